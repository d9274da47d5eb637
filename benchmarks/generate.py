"""Synthetic models.mp schemas of any size, for benchmarks and tests.

``generate_models(n)`` writes a schema that looks like a large real project: a
handful of enums, then ``n`` models of ``fields_per_model`` fields each (every
field type, foreign keys to earlier models, enum fields with defaults, nullable
columns, defaults, indexes, unique_together, explicit table names, comments).
It is valid models.mp (it parses without errors) and the same for the same seed.

``change_models(text, fraction)`` returns a copy with about that fraction of the
models changed the way a migration changes them: a field added, a CharField's
max_length altered, or a field dropped. ``changed_model_names`` says which.

    python benchmarks/generate.py 5000 > /tmp/models.mp
"""
from __future__ import annotations

import random
import re
import sys

ENUMS = {
    "OrderStatus": ["CART", "PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELED"],
    "UserRole": ["CUSTOMER", "STAFF", "ADMIN"],
    "Priority": ["LOW", "NORMAL", "HIGH", "URGENT"],
    "Currency": [("EUR", "eur"), ("USD", "usd"), ("GBP", "gbp"), ("JPY", "jpy")],
    "Visibility": ["PUBLIC", "INTERNAL", "PRIVATE"],
    "Channel": [("WEB", "web"), ("MOBILE", "mobile"), ("STORE", "store"), ("PHONE", "phone")],
}

_NOUNS = ["Account", "Invoice", "Order", "Product", "Shipment", "Ticket", "Payment", "Customer",
          "Warehouse", "Supplier", "Contract", "Report", "Session", "Review", "Coupon", "Refund"]
_WORDS = ["name", "code", "label", "title", "status", "amount", "total", "count", "note", "email",
          "phone", "city", "region", "score", "weight", "price", "rate", "level", "kind", "ref",
          "owner", "source", "target", "limit", "balance", "created", "closed", "opened"]
_ON_DELETE = ["CASCADE", "PROTECT", "RESTRICT", "NO_ACTION"]


def model_name(index: int) -> str:
    return f"{_NOUNS[index % len(_NOUNS)]}{index:05d}"


def _enum_text(name: str, members) -> str:
    if isinstance(members[0], tuple):
        body = "\n".join(f'    {key} = "{value}"' for key, value in members)
        return f"enum {name} {{\n{body}\n}}\n"
    return f"enum {name} {{ {', '.join(members)} }}\n"


def _field(rng: random.Random, index: int, position: int, earlier: int) -> tuple[str, str]:
    """One field line's (name, call) for model `index`; `earlier` models exist before it."""
    name = f"{rng.choice(_WORDS)}_{position}"
    roll = rng.random()
    null = rng.random() < 0.2
    suffix = ", null=true" if null else ""
    if roll < 0.22:
        length = rng.choice((20, 32, 64, 120, 255))
        if rng.random() < 0.15:
            return name, f'CharField(max_length={length}, default=""{suffix})'
        if rng.random() < 0.1:
            return name, f"CharField(max_length={length}, unique=true)"
        return name, f"CharField({length}{suffix})"
    if roll < 0.32:
        return name, f"IntegerField(default={rng.randint(0, 100)}{suffix})"
    if roll < 0.38:
        return name, f"BigIntegerField({'null=true' if null else ''})"
    if roll < 0.46:
        digits = rng.choice((10, 12, 14))
        if rng.random() < 0.5:
            return name, f"DecimalField({digits}, 2, default=0)"
        return name, f"DecimalField(max_digits={digits}, decimal_places=4{suffix})"
    if roll < 0.54:
        return name, f"BooleanField(default={'true' if rng.random() < 0.3 else 'false'})"
    if roll < 0.62:
        if rng.random() < 0.5:
            return name, "DateTimeField(auto_now_add=true)"
        return name, f"DateTimeField({'null=true' if null else 'auto_now=true'})"
    if roll < 0.67:
        return name, "TextField(null=true)"
    if roll < 0.70:
        return name, "FloatField(default=0.5)"
    if roll < 0.72:
        return name, "DateField(null=true)"
    if roll < 0.74:
        return name, "UUIDField(unique=true)" if rng.random() < 0.5 else "JSONField(null=true)"
    if roll < 0.84:
        enum = rng.choice(sorted(ENUMS))
        members = ENUMS[enum]
        key = members[0][0] if isinstance(members[0], tuple) else members[0]
        return name, f"EnumField({enum}, default={enum}.{key}{suffix})"
    if roll < 0.90 or earlier == 0:
        return name, "SmallIntegerField(default=0)" if rng.random() < 0.5 else "TextField()"
    target = model_name(rng.randrange(max(0, earlier - 200), earlier))
    name = f"{target[:-5].lower()}_{position}"
    if null and rng.random() < 0.5:
        return name, f"ForeignKey({target}, on_delete=SET_NULL, null=true)"
    if rng.random() < 0.5:
        return name, f"ForeignKey({target}{suffix})"
    return name, f"ForeignKey({target}, on_delete={rng.choice(_ON_DELETE)}{suffix})"


def _model_text(rng: random.Random, index: int, fields_per_model: int) -> str:
    name = model_name(index)
    lines = []
    if rng.random() < 0.1:
        lines.append(f"// {name}: kept in sync with the upstream service, see its API docs")
    lines.append(f"model {name} extends Model {{")
    lines.append("    id = BigAutoField()" if rng.random() < 0.3 else "    id = AutoField()")
    names = []
    for position in range(1, fields_per_model):
        field, call = _field(rng, index, position, index)
        names.append(field)
        lines.append(f"    {field} = {call}")
    if rng.random() < 0.3:
        lines.append(f'    table = "t_{name.lower()}"')
    if len(names) >= 3 and rng.random() < 0.5:
        first, second, third = rng.sample(names, 3)
        lines.append(f'    indexes = [Index({first}, {second}), Index({third}, name="ix_{name.lower()}_{third}")]')
    if len(names) >= 2 and rng.random() < 0.15:
        first, second = rng.sample(names, 2)
        lines.append(f"    unique_together = [({first}, {second})]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate_models(n_models: int, fields_per_model: int = 20, seed: int = 0) -> str:
    """A valid models.mp of n_models models and fields_per_model fields each."""
    rng = random.Random(seed)
    parts = [f"// Synthetic schema: {n_models} models, {fields_per_model} fields each (seed {seed}).\n\n"]
    for name, members in ENUMS.items():
        parts.append(_enum_text(name, members))
    parts.append("\n")
    for index in range(n_models):
        parts.append(_model_text(rng, index, fields_per_model))
        parts.append("\n")
    return "".join(parts)


_MODEL_START = re.compile(r"^model (\w+) extends \w+ \{$")
_FIELD_LINE = re.compile(r"^    (\w+) = (\w+)\(")
_MAX_LENGTH = re.compile(r"CharField\((?:max_length=)?(\d+)")


def _model_spans(lines: list[str]) -> list[tuple[str, int, int]]:
    """(name, first line, closing-brace line) of each model in a generated text."""
    spans = []
    for number, line in enumerate(lines):
        match = _MODEL_START.match(line)
        if match:
            end = lines.index("}", number)
            spans.append((match.group(1), number, end))
    return spans


def changed_model_names(text: str, fraction: float = 0.01, seed: int = 0) -> list[str]:
    """The models change_models(text, fraction, seed) changes, in file order."""
    spans = _model_spans(text.split("\n"))
    count = max(1, round(len(spans) * fraction))
    chosen = random.Random(seed).sample(range(len(spans)), min(count, len(spans)))
    return [spans[i][0] for i in sorted(chosen)]


def change_models(text: str, fraction: float = 0.01, seed: int = 0) -> str:
    """A copy of a generated schema with about `fraction` of its models changed.

    Each chosen model gets one change, in turn: a new field, a CharField whose
    max_length grows (or a new field where there is none), or a dropped field (one
    no index names).
    """
    lines = text.split("\n")
    spans = {name: (start, end) for name, start, end in _model_spans(lines)}
    rng = random.Random(seed + 1)
    # Later models first, so that inserting or deleting lines keeps earlier spans valid.
    for order, name in enumerate(reversed(changed_model_names(text, fraction, seed))):
        start, end = spans[name]
        body = range(start + 1, end)
        fields = [n for n in body if _FIELD_LINE.match(lines[n]) and not lines[n].startswith("    id =")]
        options = "\n".join(lines[n] for n in body if not _FIELD_LINE.match(lines[n]))
        kind = order % 3
        if kind == 1:
            chars = [n for n in fields if _MAX_LENGTH.search(lines[n])]
            if chars:
                n = rng.choice(chars)
                lines[n] = _MAX_LENGTH.sub(
                    lambda m: m.group(0)[: -len(m.group(1))] + str(int(m.group(1)) + 64), lines[n], count=1)
                continue
            kind = 0
        if kind == 2:
            droppable = [n for n in fields
                         if not re.search(rf"\b{_FIELD_LINE.match(lines[n]).group(1)}\b", options)]
            if droppable:
                del lines[rng.choice(droppable)]
                continue
        lines.insert(end, f"    added_{rng.randrange(10**6)} = IntegerField(default=0)")
    return "\n".join(lines)



_NULLABLE_CANDIDATE = re.compile(r"^    \w+ = (IntegerField|SmallIntegerField|BooleanField|FloatField|TextField)\((.*)\)$")


def rebuild_change(text: str, count: int = 50, seed: int = 0) -> str:
    """A copy of a generated schema changed as a small migration changes a large
    project: ``count`` models each get a NOT NULL field made nullable (on SQLite, a
    table rebuild), and its first CharField's max_length grown where it has one (a
    second alter of the same table); ``count`` other models each get a nullable
    column added (a plain ADD COLUMN)."""
    lines = text.split("\n")
    spans = _model_spans(lines)
    rng = random.Random(seed)
    order = rng.sample(range(len(spans)), len(spans))
    altered, added = [], []
    for i in order:
        name, start, end = spans[i]
        candidates = [n for n in range(start + 1, end) if (m := _NULLABLE_CANDIDATE.match(lines[n]))
                      and "null=" not in m.group(2) and "unique" not in m.group(2)]
        if candidates and len(altered) < count:
            altered.append((i, rng.choice(candidates)))
        elif len(added) < count:
            added.append(i)
        if len(altered) >= count and len(added) >= count:
            break
    for _i, n in altered:
        arguments = _NULLABLE_CANDIDATE.match(lines[n]).group(2)
        lines[n] = lines[n][:-1] + (", null=true)" if arguments else "null=true)")
        _name, start, end = spans[_i]
        for m in range(start + 1, end):
            if _MAX_LENGTH.search(lines[m]):
                lines[m] = _MAX_LENGTH.sub(
                    lambda k: k.group(0)[: -len(k.group(1))] + str(int(k.group(1)) + 64), lines[m], count=1)
                break
    for i in sorted(added, reverse=True):
        _name, _start, end = spans[i]
        lines.insert(end, f"    added_{i} = IntegerField(null=true)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(generate_models(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
