"""What is generated from the :class:`dashcam.settings.Settings` schema for people: CLI option help
and the settings table of docs/configuration.md (issue 13, point 4).

* :func:`setting_option` - a ``typer.Option`` for a setting: help = the field's description (+ a
  note for that command) + its allowed values, env var ``DASHCAM_<FIELD>``, the Settings default
  shown as the default. The option's own default stays ``None`` ("not given"), so the
  environment and the schema default apply as in ``Settings()``; values are checked once, by the
  schema (:class:`dashcam.settings.SettingsError`, one line).
* :func:`settings_markdown` - the table (setting, env var, flags, default, allowed, meaning); the
  flags are found by walking the Typer app for options that read a setting's env var.
* :func:`write_doc` - replaces the table between :data:`DOC_BEGIN` and :data:`DOC_END` in a
  Markdown file (``dashcam config --write-doc docs/configuration.md``).

tests/test_settings.py fails when the committed table or an option's help drifts from the schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
import typer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dashcam.settings import Settings, env_var

DOC_BEGIN = (
    "<!-- settings table: generated from dashcam/settings.py by "
    "`dashcam config --write-doc docs/configuration.md`; edit the schema, not this table -->"
)
DOC_END = "<!-- end of settings table -->"


def field(name: str) -> FieldInfo:
    """The schema entry of setting ``name``.

    Raises:
        KeyError: no such setting (one line naming the known ones' source).
    """
    try:
        return Settings.model_fields[name]
    except KeyError:
        raise KeyError(f"no setting {name!r} in dashcam.settings.Settings") from None


def _extra(f: FieldInfo, key: str) -> str | None:
    extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
    value = extra.get(key)
    return None if value is None else str(value)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` annotation (also inside ``X | None``); () otherwise."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def allowed(name: str, *, markdown: bool = False) -> str:
    """The values setting ``name`` accepts, from its type and bounds, e.g. ``0 <= x <= 3650``,
    ``one of: plate, rapidocr, paddleocr``; ``""`` when the type says all (a free string, a path)."""
    f = field(name)
    code = (lambda s: f"`{s}`") if markdown else str
    given = _extra(f, "allowed")
    if given is not None:
        return given if markdown else given.replace("`", "")
    values = _literal_values(f.annotation)
    if values:
        return "one of: " + ", ".join(code(v) for v in values)
    if f.annotation is bool:
        return f"{code('true')} or {code('false')}"
    lo: tuple[str, str] | None = None  # (operator seen from x, bound)
    hi: tuple[str, str] | None = None
    rules = []
    for m in f.metadata:
        if isinstance(m, at.Ge):
            lo = (">=", _num(m.ge))
        elif isinstance(m, at.Gt):
            lo = (">", _num(m.gt))
        elif isinstance(m, at.Le):
            hi = ("<=", _num(m.le))
        elif isinstance(m, at.Lt):
            hi = ("<", _num(m.lt))
        elif isinstance(m, at.MultipleOf):
            rules.append(f"a multiple of {_num(m.multiple_of)}")
        elif isinstance(m, at.MinLen) and m.min_length == 1:
            rules.append("not empty")
        elif getattr(m, "pattern", None):
            rules.append(f"matching {code(m.pattern)}")
    if lo and hi:  # "0 <= x <= 3650"
        rules.insert(0, f"{lo[1]} {lo[0].replace('>', '<')} x {hi[0]} {hi[1]}")
    elif lo or hi:  # "x > 0"
        op, v = lo or hi  # type: ignore[misc]
        rules.insert(0, f"x {op} {v}")
    if rules and f.default is None:
        rules.append("or unset")
    return ", ".join(rules)


def shown_default(name: str, *, markdown: bool = False) -> str | None:
    """The default of setting ``name`` as a person reads it (``None``: no default, unset)."""
    f = field(name)
    text = _extra(f, "shown_default")
    if text is not None:
        return text if markdown else text.replace("`", "")
    d = f.default
    if d is PydanticUndefined or d is None:
        return None
    if isinstance(d, bool):
        s = "true" if d else "false"
    elif isinstance(d, tuple):
        s = ",".join(map(str, d))
    else:
        s = _num(d)
    return f"`{s}`" if markdown and not isinstance(d, int | float) else s


def description(name: str, *, markdown: bool = False) -> str:
    """The description of setting ``name`` (backticks removed unless ``markdown``)."""
    text = field(name).description or ""
    return text if markdown else text.replace("`", "")


def setting_help(name: str, note: str = "") -> str:
    """Help text of a CLI option for setting ``name``: description, ``note``, allowed values."""
    parts = [description(name)]
    if note:
        parts.append(note)
    rule = allowed(name)
    if rule:
        parts.append(f"Allowed: {rule}.")
    return " ".join(parts)


def setting_option(name: str, *param_decls: str, note: str = "", **kwargs: Any) -> Any:
    """A ``typer.Option`` for setting ``name`` of :class:`dashcam.settings.Settings`.

    Use it as ``detect_fps: Annotated[Optional[float], setting_option("detect_fps")] = None`` and
    pass the value to ``Settings`` when it is not None. The help is :func:`setting_help` (written
    once, in the schema), the env var ``DASHCAM_<NAME>`` (as ``Settings`` reads it), the shown
    default the schema's.

    Args:
        name: the Settings field.
        param_decls: the flags (default ``--<name with dashes>``).
        note: a sentence for this command, appended to the description.
        kwargs: more ``typer.Option`` arguments (``rich_help_panel``, ``hidden``...).

    Raises:
        KeyError: ``name`` is not a setting.
    """
    default = shown_default(name)
    decls = param_decls or ("--" + name.replace("_", "-"),)
    return typer.Option(
        *decls,
        envvar=env_var(name),
        help=setting_help(name, note),
        show_default=default if default is not None else False,
        **kwargs,
    )


def cli_flags(app: typer.Typer | None = None) -> dict[str, list[str]]:
    """Setting -> the long flags that set it in the ``dashcam`` CLI (options reading its env var)."""
    if app is None:
        from dashcam.cli import app as dashcam_app

        app = dashcam_app
    found: dict[str, set[str]] = {}

    def walk(cmd: Any) -> None:  # a click Command (typer's own click in typer >= 0.2x)
        for p in cmd.params:
            envs = [p.envvar] if isinstance(p.envvar, str) else list(p.envvar or ())
            for e in envs:
                name = e.removeprefix("DASHCAM_").lower()
                if e.startswith("DASHCAM_") and name in Settings.model_fields:
                    found.setdefault(name, set()).update(o for o in p.opts if o.startswith("--"))
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return {k: sorted(v) for k, v in found.items()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_markdown(app: typer.Typer | None = None) -> str:
    """The settings table of docs/configuration.md, one row per :class:`Settings` field in schema
    order (ends with a newline)."""
    flags = cli_flags(app)
    rows = ["| setting | env var | flags | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for name in Settings.model_fields:
        cells = [
            name,
            f"`{env_var(name)}`",
            " ".join(f"`{f}`" for f in flags.get(name, [])),
            shown_default(name, markdown=True) or "—",
            allowed(name, markdown=True),
            description(name, markdown=True),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def doc_table(text: str) -> str:
    """The generated table inside a Markdown text (between the markers).

    Raises:
        ValueError: the markers are missing (one line)."""
    m = re.search(re.escape(DOC_BEGIN) + r"\n(.*?)" + re.escape(DOC_END), text, re.S)
    if m is None:
        raise ValueError(f"no generated settings table (the line {DOC_BEGIN!r} ... {DOC_END!r}) in the file")
    return m.group(1)


def write_doc(path: str | Path, app: typer.Typer | None = None) -> bool:
    """Replace the generated table in the Markdown file ``path``; returns whether it changed.

    Raises:
        ValueError: ``path`` has no markers; OSError: it cannot be read or written."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    old = doc_table(text)
    new = settings_markdown(app)
    if old == new:
        return False
    start = text.index(DOC_BEGIN) + len(DOC_BEGIN) + 1
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text[:start] + new + text[start + len(old) :], encoding="utf-8")
    tmp.replace(p)
    return True
