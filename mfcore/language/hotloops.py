"""The hot loops of validation, written once.

This file is plain Python and is the pure-Python path. setup.py also compiles it,
unchanged, with Cython (pure-Python mode) into mfcore.language._hotloops, which
parser.py uses when the compiled core is in use (see mfcore/compiled.py). Keep it
to what both read the same way: no imports, no annotations that Cython would
enforce; validate.py passes in the classes and callbacks the loops need.
"""


def split_statements(statements, call_class):
    """A model's statements as (field statements, option statements), each the raw
    statements themselves in their order: a field is a call (except `indexes = ...`,
    whose Index(...) entries are calls too)."""
    fields = []
    options = []
    for statement in statements:
        if type(statement[2]) is call_class and statement[0] != "indexes":
            fields.append(statement)
        else:
            options.append(statement)
    return fields, options


def build_fields(model_name, statements, enums, cache, fields, by_name, positions, index_fields, add,
                 build_uncached, field_class, name_class, foreign_keys):
    """The per-field loop of a model. Problems and cache misses go to the callbacks
    (``add``, ``build_uncached``), so the rules live in validate.py. ``foreign_keys``
    receives {name: pos} of the foreign keys whose db_index is not given (build_field
    says None), which validate.py indexes when the project indexes foreign keys.

    Large schemas repeat the same calls (CharField(max_length=255) ...): a call that
    built cleanly once is reused under the new name from ``cache``. Types are part of
    the key because True == 1 and 1 == 1.0 in Python, and so is a decimal number's
    text, because 0.0 == -0.0 (a float default keeps its sign). They repeat whole fields too
    (an id, a created_at): the same name with the same call is one Field object, which
    at 20,000 models keeps a quarter of the fields' memory.
    """
    own_seen = set()
    for name, pos, call, _value_pos in statements:
        if name in own_seen:
            add(f"duplicate field '{name}' in model {model_name}", pos)
            continue
        own_seen.add(name)
        key_args = []
        for keyword, value, _pos in call.args:
            kind = type(value)
            if kind is name_class:
                key_args.append((keyword, name_class, value.text))
            elif kind is str or kind is int or kind is bool:
                key_args.append((keyword, kind, value))
            else:  # a decimal number: equal values may be different defaults (0.0 and -0.0)
                key_args.append((keyword, kind, value, str(value)))
        key = (call.name, tuple(key_args))
        cached = cache.get(key)
        if cached is not None:
            type_name, column, rest, db_index, built_by_name = cached
            built = built_by_name.get(name)
            if built is None:
                built = tuple.__new__(field_class, (name, type_name, name if column is None else column) + rest)
                built_by_name[name] = built
        else:
            result = build_uncached(model_name, name, pos, call, enums, cache, key, add)
            if result is None:
                continue
            built, db_index = result
        positions[name] = pos
        if db_index:
            index_fields.append((((name, pos),), None, False, pos))
        elif db_index is None:
            foreign_keys[name] = pos
        if name in by_name:
            fields[by_name[name]] = built  # a model may override an inherited field
        else:
            by_name[name] = len(fields)
            fields.append(built)
