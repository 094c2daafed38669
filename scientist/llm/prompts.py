"""Prompt texts live in prompts/, one file a prompt; this module only fills them in."""

import string

from scientist import REPO

PROMPTS_DIR = REPO / "prompts"


def render(name: str, **values) -> str:
    """Fill prompts/<name>.txt. A placeholder without a value is an error, not a silently empty slot."""
    template = (PROMPTS_DIR / f"{name}.txt").read_text()
    expected = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    missing = expected - set(values)
    if missing:
        raise KeyError(f"prompts/{name}.txt needs values for {sorted(missing)}")
    return template.format(**values)
