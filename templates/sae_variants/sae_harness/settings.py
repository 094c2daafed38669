"""experiment.py's Settings, checked and recorded: what a run trained is what its final_info.json says.

The harness never imports experiment.py. It takes the Settings instance it is given (any dataclass) and records
every field as it ran in final_info.json's "settings" group: numbers under "means", so that the research loop
compares them between runs, and strings, booleans and lists of them under "choices".
"""

import dataclasses

from .config import ConfigError

SOURCE = "experiment.py (run_settings)"
RECORDABLE = (int, float, str, bool)


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


def settings_group(settings) -> dict:
    """final_info.json's "settings" group: {"status": "ok", "means": {numbers}, "choices": {everything else}}."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise TypeError(f"settings must be a dataclass instance, not {type(settings).__name__}")
    means, choices = {}, {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            means[f.name] = value
        elif isinstance(value, (str, bool)):
            choices[f.name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, RECORDABLE) for v in value):
            choices[f.name] = list(value)
        else:
            raise ConfigError(
                f"{SOURCE}: {f.name} = {value!r} is a {type(value).__name__}; a setting must be a number, a string, "
                "a boolean or a list of them, so that final_info.json can record the value that ran. Compute "
                "anything else from the settings inside the SAE or the trainer."
            )
    return {"status": "ok", "means": means, "choices": choices}
