"""The launch wizard's form, without Textual: the values, their parsing and validation.

The wizard keeps raw strings from its inputs in a `LaunchForm`; `validate_form` says, per
field, what is wrong and what to do, and `LaunchForm.hyperparameters()` /
`LaunchForm.option_values()` turn the strings into what the launch use-case takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from providers.base import Capabilities, ProviderOption
from providers.types import BaseModelInfo, Hyperparameters

AUTO = "auto"


def today() -> date:
    """Today's date by the lifecycle service's clock (FTM_TODAY fixes it)."""
    from app import lifecycle

    return lifecycle.today()


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class DatasetChoice:
    """A dataset as the wizard lists it."""

    id: int
    name: str
    verdict: str  # ok | warnings | errors
    n_train: int
    n_validation: int
    format: str
    content_hash: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.verdict}, {self.n_train} train / {self.n_validation} val)"


@dataclass
class LaunchForm:
    """The wizard's fields as typed (strings), plus the context they are checked against."""

    name: str = ""
    dataset: DatasetChoice | None = None
    provider: str | None = None
    base_model: str | None = None
    method: str | None = None
    n_epochs: str = AUTO
    batch_size: str = AUTO
    learning_rate_multiplier: str = AUTO
    options: dict[str, str] = field(default_factory=dict)
    """Provider option name -> the text typed (only the ones the user changed)."""

    # context
    capabilities: Capabilities | None = None
    provider_options: tuple[ProviderOption, ...] = ()
    base_models: list[BaseModelInfo] = field(default_factory=list)

    def base_model_info(self) -> BaseModelInfo | None:
        return next((m for m in self.base_models if m.id == self.base_model), None)

    def hyperparameters(self) -> Hyperparameters:
        """The common hyperparameters; raises ValueError on a field that does not parse."""
        return Hyperparameters(
            n_epochs=_parse_auto(self.n_epochs, int, "epochs"),
            batch_size=_parse_auto(self.batch_size, int, "batch size"),
            learning_rate_multiplier=_parse_auto(
                self.learning_rate_multiplier, float, "learning-rate multiplier"
            ),
        )

    def option_values(self) -> dict[str, Any]:
        """Provider options that differ from their defaults, parsed to their types."""
        by_name = {o.name: o for o in self.provider_options}
        out: dict[str, Any] = {}
        for name, text in self.options.items():
            option = by_name.get(name)
            if option is None or text.strip() == "" or text.strip() == str(option.default):
                continue
            out[name] = parse_option(option, text)
        return out


def _parse_auto(text: str, kind: type, what: str) -> Any:
    value = text.strip().lower()
    if value in ("", AUTO):
        return AUTO
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number; type a number or 'auto'") from None
    if number <= 0:
        raise ValueError(f"{what}: must be greater than 0 (or 'auto')")
    return number


_KIND = {int: "a whole number", float: "a number", str: "text"}


def parse_option(option: ProviderOption, text: str) -> Any:
    """Parse ``text`` as ``option``'s type; ValueError names the option and what it takes."""
    value = text.strip()
    if value.lower() == AUTO and option.default == AUTO:
        return AUTO
    if option.type is bool:
        low = value.lower()
        if low not in {"true", "false", "yes", "no", "1", "0"}:
            raise ValueError(f"{option.name}: type true or false")
        return low in {"true", "yes", "1"}
    try:
        parsed = option.type(value)
    except (TypeError, ValueError):
        hint = " or 'auto'" if option.default == AUTO else ""
        raise ValueError(
            f"{option.name}: {value!r} is not {_KIND.get(option.type, option.type.__name__)}{hint}"
        ) from None
    if option.choices and parsed not in option.choices:
        raise ValueError(f"{option.name}: choose one of {', '.join(map(str, option.choices))}")
    return parsed


def sunset_warning(model: BaseModelInfo | None, on: date | None = None) -> str | None:
    """A warning when the base model has a retirement date (past or coming); the wording
    and the rule are the lifecycle service's."""
    from app.lifecycle import listed_retirement

    found = listed_retirement(model, on or today()) if model is not None else None
    return found.message if found else None


def is_retired(model: BaseModelInfo) -> bool:
    """Whether the model's retirement date has passed (the lifecycle service's rule)."""
    from app.lifecycle import listed_retirement

    found = listed_retirement(model, today())
    return found is not None and found.retired


def validate_form(form: LaunchForm) -> dict[str, str]:
    """Problems by field id (``name``, ``dataset``, ``provider``, ``base_model``,
    ``method``, ``n_epochs``, ``batch_size``, ``learning_rate_multiplier``,
    ``option:<name>``); empty when the form can be launched."""
    problems: dict[str, str] = {}
    if not form.name.strip():
        problems["name"] = "Give the job a name (letters, digits, . _ -)."
    elif not NAME_PATTERN.match(form.name.strip()):
        problems["name"] = (
            "Use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )

    if form.dataset is None:
        problems["dataset"] = "Choose a dataset (add one with: ftm data add FILE)."
    elif form.dataset.verdict == "errors":
        problems["dataset"] = (
            f"Dataset {form.dataset.name} has validation errors; fix them first "
            f"(ftm data check {form.dataset.name})."
        )
    elif form.dataset.n_train == 0:
        problems["dataset"] = f"Dataset {form.dataset.name} has no training examples."

    if form.provider is None:
        problems["provider"] = "Choose a provider."
    if form.base_model is None:
        problems["base_model"] = "Choose a base model."
    else:
        info = form.base_model_info()
        if info is not None and is_retired(info):
            problems["base_model"] = f"{info.id} is retired; choose another base model."
    methods = form.capabilities.methods if form.capabilities else ()
    if form.method is None:
        problems["method"] = "Choose a training method."
    elif methods and form.method not in methods:
        problems["method"] = f"{form.provider} offers: {', '.join(methods)}."
    else:
        info = form.base_model_info()
        if (
            info is not None
            and info.methods
            and form.method not in info.methods
            and not _alias(form.method, info.methods)
        ):
            problems["method"] = f"{info.id} supports: {', '.join(info.methods)}."
    if form.dataset is not None and form.method == "dpo" and form.dataset.format != "preference":
        problems["method"] = "DPO needs a preference dataset (chosen / rejected pairs)."
    if (
        form.dataset is not None
        and form.dataset.format == "preference"
        and form.method not in (None, "dpo")
    ):
        problems["method"] = "A preference dataset trains with DPO; choose dpo."

    for field_id, text, kind, what in (
        ("n_epochs", form.n_epochs, int, "epochs"),
        ("batch_size", form.batch_size, int, "batch size"),
        (
            "learning_rate_multiplier",
            form.learning_rate_multiplier,
            float,
            "learning-rate multiplier",
        ),
    ):
        try:
            value = _parse_auto(text, kind, what)
        except ValueError as exc:
            problems[field_id] = str(exc)
            continue
        if (
            value == AUTO
            and form.capabilities
            and not form.capabilities.supports_auto_hyperparameters
        ):
            continue  # the provider fills its own default
        if field_id == "n_epochs" and value != AUTO and value > 50:
            problems[field_id] = "epochs: at most 50."

    by_name = {o.name: o for o in form.provider_options}
    for name, text in form.options.items():
        option = by_name.get(name)
        if option is None or text.strip() == "":
            continue
        try:
            parse_option(option, text)
        except ValueError as exc:
            problems[f"option:{name}"] = str(exc)
    return problems


def _alias(method: str, supported: tuple[str, ...]) -> bool:
    """Local methods (lora/qlora/dora/ia3/prefix/full) are all supervised fine-tuning."""
    return (
        method in ("lora", "qlora", "dora", "ia3", "prefix", "full") and "supervised" in supported
    )


def methods_offered(provider_methods: tuple[str, ...], info: BaseModelInfo | None) -> list[str]:
    """The provider's methods the chosen base model supports (its listing says which: a
    local model without an attention cache has no prefix tuning, say); all of them when
    the model is not listed or lists none."""
    if info is None or not info.methods:
        return list(provider_methods)
    offered = [m for m in provider_methods if m in info.methods or _alias(m, info.methods)]
    return offered or list(provider_methods)
