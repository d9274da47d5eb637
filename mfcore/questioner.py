"""Questions the differ cannot answer alone: was this a rename?

The differ never prompts; it asks a Questioner. The CLI picks the interactive one
on a terminal and the one that never guesses elsewhere (Django's split).
"""
from __future__ import annotations

import sys
from typing import Optional

from .schema import Field, Model

# The answer to a backfill question that asks for a run_sql step the user fills in,
# instead of one value for every row (`--backfill Model.field=@sql`; backfills.py).
BY_HAND = "@sql"


class Questioner:
    """Answers no to every question: off a terminal mf does not guess."""

    def ask_rename_field(self, model: str, old: Field, new: Field) -> bool:
        return False

    def ask_rename_model(self, old: Model, new: Model) -> bool:
        return False

    def ask_backfill(self, model: str, field: Field) -> Optional[str]:
        """A one-off value, as typed, for the rows a NOT NULL change leaves without one;
        BY_HAND: a run_sql step the user fills in (backfills.py); None: no value (the
        change is refused)."""
        return None


class InteractiveQuestioner(Questioner):
    """Asks on the terminal; the default answer is no."""

    def __init__(self, input_stream=None, output_stream=None):
        self.input = input_stream or sys.stdin
        self.output = output_stream or sys.stderr

    def _ask(self, question: str) -> bool:
        return self._answer(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    def _answer(self, prompt: str) -> str:
        try:
            # Inside the try: a Ctrl-C that lands right after the prompt is shown, before
            # the read begins, ends the line too.
            self.output.write(prompt)
            self.output.flush()
            return self.input.readline()
        except KeyboardInterrupt:
            # Ctrl-C at the question: what is said next starts on a line of its own.
            self.output.write("\n")
            self.output.flush()
            raise

    def ask_rename_field(self, model, old, new):
        return self._ask(f"Did you rename {model}.{old.name} to {model}.{new.name} ({new.type})?")

    def ask_rename_model(self, old, new):
        return self._ask(f"Did you rename model {old.name} to {new.name}?")

    def ask_backfill(self, model, field):
        if field.unique:
            # One value for every row cannot be unique: only the rows' own SQL can fill it.
            wanted = self._ask(f"{model}.{field.name} ({field.type}) becomes NOT NULL and unique: rows that exist "
                               "need a value each. Write a run_sql step into the migration for you to fill them?")
            return BY_HAND if wanted else None
        answer = self._answer(f"{model}.{field.name} ({field.type}) becomes NOT NULL: rows that exist need a value. "
                              "A one-off value for them (JSON or text), @sql to fill them yourself in a run_sql step "
                              "of the migration, or empty to stop: ").strip()
        return answer or None


class AnswerQuestioner(Questioner):
    """Answers from a fixed set of renames: {("Customer", "phone"): "mobile", "OldModel": "NewModel"}."""

    def __init__(self, field_renames=None, model_renames=None):
        self.field_renames = dict(field_renames or {})
        self.model_renames = dict(model_renames or {})

    def ask_rename_field(self, model, old, new):
        return self.field_renames.get((model, old.name)) == new.name

    def ask_rename_model(self, old, new):
        return self.model_renames.get(old.name) == new.name
