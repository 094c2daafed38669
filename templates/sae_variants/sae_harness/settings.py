"""experiment.py's Settings, checked and recorded: what a run trained is what its final_info.json says.

The harness never imports experiment.py. It takes the Settings instance it is given (any dataclass) and records it in
final_info.json's "settings" group: numbers under "means", so that the research loop compares them between runs, and
strings, booleans and lists of them under "choices".

The values recorded are the ones that ran, not only the ones run_settings() wrote. An idea edits experiment.py
freely, so a knob may be changed in code (`self.k = 64` in an SAE's __init__ while Settings.k stays 32), and a field
may go unread (k, for the ReLU CustomSAE). So a run reports, after training:
- effective values: each SAE and the trainer name what they used (SAEBase.effective_settings and
  CustomTrainer.effective_settings, read from their own attributes by settings_attributes below);
- reads: SettingsReads records which fields experiment.py's code read during the run.
settings_group() then puts the effective value under means/choices, says where it differs from run_settings()'s
("overridden_in_code": {field: {"run_settings": 32, "ran": 64}}), and moves the fields nothing read or reported
out of means into "unused": {field: run_settings()'s value}, so that no reader takes them for values that ran.
"""

import dataclasses
import math
import sys
from collections.abc import Collection

from .config import ConfigError

SOURCE = "experiment.py (run_settings)"
RECORDABLE = (int, float, str, bool)
SETTING_ALIASES = {"l1_coefficient": "sparsity_penalty", "l0_coefficient": "sparsity_penalty"}
"""Attribute names that hold a Settings field under another name (CustomSAE's and JumpReLUSAE's coefficients)."""


def check_settings(settings, checks: list[tuple[str, bool, str]]):
    """Raise ConfigError for the first (field, ok, fix) whose ok is False, naming experiment.py, the field, its value
    and the fix; then check that every field can be recorded and that final_info.schema.json's required settings
    are there."""
    import jsonschema

    from .results import validate_group  # results.py records the settings group; imported here, not at the top

    for name, ok, fix in checks:
        if not ok:
            raise ConfigError(f"{SOURCE}: {name} = {getattr(settings, name)!r} is invalid; {fix}.")
    try:
        validate_group("settings", settings_group(settings))
    except jsonschema.ValidationError as err:
        raise ConfigError(f"{SOURCE}: the settings break final_info.schema.json ({err.message}); keep the fields "
                          "build_sae() and train() read (variant, dict_size, batch_size, epochs, lr, seed) and give "
                          "each a value of its type.") from None


def settings_values(settings) -> dict:
    """{field: value} of a Settings instance, each value checked to be recordable (a list comes back as a list)."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise TypeError(f"settings must be a dataclass instance, not {type(settings).__name__}")
    values = {}
    for f in dataclasses.fields(settings):
        value = object.__getattribute__(settings, f.name)  # not a read of the run (see SettingsReads)
        if isinstance(value, (list, tuple)) and all(isinstance(v, RECORDABLE) for v in value):
            value = list(value)
        elif not isinstance(value, RECORDABLE):
            raise ConfigError(
                f"{SOURCE}: {f.name} = {value!r} is a {type(value).__name__}; a setting must be a number, a string, "
                "a boolean or a list of them, so that final_info.json can record the value that ran. Compute "
                "anything else from the settings inside the SAE or the trainer."
            )
        values[f.name] = value
    return values


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(ran, given) -> bool:
    """Whether a value that ran is run_settings()'s own (a float32 copy of a float counts as the same)."""
    if _is_number(ran) and _is_number(given):
        return math.isclose(ran, given, rel_tol=1e-6)
    return type(ran) is type(given) and ran == given


def settings_group(settings, effective: dict | None = None, read: Collection[str] | None = None) -> dict:
    """final_info.json's "settings" group: {"status": "ok", "means": {numbers}, "choices": {everything else}}, and,
    when the run reported them, "overridden_in_code" and "unused" (see the module docstring).

    effective: {field: value} the SAE and the trainer reported using; read: the fields experiment.py's code read
    during the run (None when not recorded: then no field is called unused)."""
    given = settings_values(settings)
    effective = {name: list(value) if isinstance(value, tuple) else value
                 for name, value in (effective or {}).items() if name in given}
    ran = {**given, **effective}
    used = None if read is None else set(read) | set(effective)
    group = {"status": "ok", "means": {}, "choices": {}}
    overridden, unused = {}, {}
    for name, value in ran.items():
        if used is not None and name not in used:
            unused[name] = given[name]
            continue
        if _same(value, given[name]):
            value = given[name]
        else:
            overridden[name] = {"run_settings": given[name], "ran": value}
        group["means" if _is_number(value) else "choices"][name] = value
    if overridden:
        group["overridden_in_code"] = overridden
    if unused:
        group["unused"] = unused
    return group


def given_settings(group: dict) -> dict:
    """run_settings()'s values, rebuilt from a recorded settings group: what a resumed sweep compares with the
    settings it would run now."""
    given = {**group["means"], **group["choices"], **group.get("unused", {})}
    given.update({name: values["run_settings"] for name, values in group.get("overridden_in_code", {}).items()})
    return given


def settings_attributes(obj, settings) -> dict:
    """The attributes of obj (an SAE or the trainer) named as a field of `settings` or as one of SETTING_ALIASES,
    with their recordable values (a one-element tensor as its number): what obj actually uses, read from obj itself,
    so that `self.k = 64` in an idea's code is caught with no code of its own. An exact name wins over an alias."""
    names = {f.name for f in dataclasses.fields(settings)} if dataclasses.is_dataclass(settings) else set()
    found = {}
    for attribute, value in vars(obj).items():
        name = SETTING_ALIASES.get(attribute, attribute)
        if name not in names or (name in found and attribute != name):
            continue
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        if isinstance(value, RECORDABLE):
            found[name] = value
    return found


class SettingsReads:
    """Records which fields of a Settings instance the run's own code reads while the block is open:

        with SettingsReads(settings) as reads:
            ...build, train and write the run...
        reads.names  # the fields read

    For the duration, the instance's class is a subclass of its own whose attribute lookup notes field reads (the
    instance stays a Settings, and is the same object); the class is put back on exit. Reads by the dataclass
    machinery (the generated __repr__, __eq__ and __hash__, dataclasses.replace, Settings.__post_init__'s checks) and
    by the harness do not count: they read every field. A Settings made inside the block by dataclasses.replace
    keeps recording into this block's names.
    """

    def __init__(self, settings):
        self.settings = settings
        self.names: set[str] = set()

    def __enter__(self) -> "SettingsReads":
        own_class = type(self.settings)
        fields = {f.name for f in dataclasses.fields(own_class)}
        names = self.names

        def __getattribute__(obj, name):
            if name in fields and _counts_as_read(sys._getframe(1)):
                names.add(name)
            return own_class.__getattribute__(obj, name)

        # No slots of its own, so that the instance's layout stays its class's and its class can be swapped.
        self.watched = type(own_class.__name__, (own_class,), {
            "__getattribute__": __getattribute__, "__slots__": (), "__qualname__": own_class.__qualname__,
            "__module__": own_class.__module__})
        object.__setattr__(self.settings, "__class__", self.watched)
        return self

    def __exit__(self, *exc_info):
        object.__setattr__(self.settings, "__class__", self.watched.__mro__[1])


def _counts_as_read(frame) -> bool:
    """Whether a read from this frame is the run's own: not the dataclass machinery's (its generated methods are
    compiled from "<string>"), not Settings.__post_init__'s checks, not the harness's."""
    module = frame.f_globals.get("__name__", "")
    return not (frame.f_code.co_filename == "<string>" or frame.f_code.co_name == "__post_init__"
                or module == "dataclasses" or module.startswith(__package__ + "."))
