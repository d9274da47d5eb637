"""Operations: the steps between two schemas, as plain data.

records.py   the operations: apply, reverse, destructive, what an alter changes
tables.py    the table definitions operations carry for the dialects
codec.py     their JSON form in a migration file (the current form; legacy.py reads the earlier tool's)
text.py      how they read in makemigrations' tree, in file names, and what undoing them loses
locks.py     what they lock in one transaction: the split of a large migration, migrate's estimate
"""
from .text import cannot_undo, undo_loss
from .codec import OPERATION_KINDS, operation_from_json, operation_to_json, table_def_from_json, table_def_to_json
from .records import (COLUMN_ASPECTS, AddCheck, AddColumn, AddForeignKey, AddIndex, AlterColumn, AlterEnum, CreateEnum,
                      CreateModel, DropCheck, DropColumn, DropEnum, DropForeignKey, DropIndex, DropModel, Operation,
                      RenameColumn, RenameModel, RunPython, RunSQL, column_changes, fill_placeholder, fold,
                      is_narrowing, referencing_type, rounding, undo)
from .tables import Reference, TableDef, attach_tables, fold_start, folding, referenced_key, table_def
from .locks import lock_estimate, locked_objects, locked_tables, split_operations, tables_of

__all__ = [
    "OPERATION_KINDS", "operation_from_json", "operation_to_json", "table_def_from_json", "table_def_to_json",
    "COLUMN_ASPECTS", "AddCheck", "AddColumn", "AddForeignKey", "AddIndex", "AlterColumn", "AlterEnum", "CreateEnum",
    "CreateModel", "DropCheck", "DropColumn", "DropEnum", "DropForeignKey", "DropIndex", "DropModel", "Operation",
    "RenameColumn", "RenameModel", "RunPython", "RunSQL", "column_changes", "fill_placeholder", "fold",
    "is_narrowing", "referencing_type", "rounding", "undo",
    "Reference", "TableDef", "attach_tables", "fold_start", "folding", "referenced_key", "table_def", "cannot_undo", "undo_loss",
    "lock_estimate", "locked_objects", "locked_tables", "split_operations", "tables_of",
]
