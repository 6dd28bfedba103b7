"""Which configuration fields the code reads, by dotted path: a recorder for the tests.

While installed, every configuration model (``ijules.frozen.Frozen``) notes each field that code
reads as an attribute and that holds a value rather than another section. Models are known by
their place in the tree that ``load_config`` returned (copies made with ``model_copy`` keep their
original's place); a read on a model of unknown place counts for every place of its class.
Reads while a configuration is parsed (its validators) only accept or refuse it: they do not
count. Serialising a model (``model_dump``) reads nothing. A parameter digest stands for every value
under its sections, so an output that embeds one depends on them all: ``Config.digest`` notes
them in ``digested``, apart from ``reads`` (a hash does not make a key do anything).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

import ijules.config
from ijules.config import Config
from ijules.frozen import Frozen


def _model_type(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model class an annotation holds, and whether it is a dict of them."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_type(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is dict:
        inner, _ = _model_type(typing.get_args(annotation)[1])
        return inner, True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def schema_fields(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, type]:
    """Every value field of the configuration, by dotted path (``*`` for a dict's keys), with
    the class that declares it."""
    fields: dict[str, type] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        inner, mapping = _model_type(info.annotation)
        if inner is None:
            fields[path] = model
        else:
            fields.update(schema_fields(inner, f"{path}.*." if mapping else f"{path}."))
    return fields


class ConfigReads:
    """Field reads, by dotted path, collected while :meth:`recording`."""

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.digested: set[str] = set()
        self._places: dict[int, str] = {}
        self._known: list[BaseModel] = []  # held, so that no id is reused by another model
        self._parsing = 0
        self._schema = schema_fields()

    def paths_of(self, cls: type, field: str) -> set[str]:
        """Every schema path where ``cls`` declares ``field``."""
        return {
            path
            for path, owner in self._schema.items()
            if owner is cls and path.rsplit(".", 1)[-1] == field
        }

    def place(self, model: BaseModel, path: str) -> None:
        """Know ``model`` (and the models under it) as sitting at ``path``."""
        self._places[id(model)] = path
        self._known.append(model)
        for name in type(model).model_fields:
            value = model.__dict__.get(name)
            here = f"{path}.{name}" if path else name
            if isinstance(value, BaseModel):
                self.place(value, here)
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, BaseModel):
                        self.place(item, f"{here}.*")

    def note(self, model: BaseModel, field: str) -> None:
        """Record a read of ``field`` on ``model``."""
        if self._parsing:
            return
        path = self._places.get(id(model))
        if path is None:
            self.reads |= self.paths_of(type(model), field)
        else:
            self.reads.add(f"{path}.{field}" if path else field)

    def note_sections(self, sections: tuple[str, ...]) -> None:
        """Record that a digest covered every value under ``sections`` (all if none)."""
        for path in self._schema:
            if path.split(".")[0] != "paths" and (not sections or path.split(".")[0] in sections):
                self.digested.add(path)

    @contextmanager
    def recording(self) -> Iterator[ConfigReads]:
        """Install the recorder on every configuration model; remove it afterwards."""
        recorder = self
        plain_getattribute = object.__getattribute__
        original_copy = BaseModel.model_copy
        original_load = ijules.config.load_config
        original_digest = Config.digest

        def spy(model: BaseModel, name: str) -> Any:
            value = plain_getattribute(model, name)
            cls = plain_getattribute(model, "__class__")
            if name in cls.__pydantic_fields__ and not _is_section(value):
                recorder.note(model, name)
            return value

        def copy(model: BaseModel, *args: Any, **kwargs: Any) -> Any:
            duplicate = original_copy(model, *args, **kwargs)
            path = recorder._places.get(id(model))
            if path is not None:
                recorder.place(duplicate, path)
            return duplicate

        def load(*args: Any, **kwargs: Any) -> Config:
            recorder._parsing += 1
            try:
                config = original_load(*args, **kwargs)
            finally:
                recorder._parsing -= 1
            recorder.place(config, "")
            return config

        def digest(config: Config, *sections: str) -> str:
            recorder.note_sections(sections)
            return original_digest(config, *sections)

        Frozen.__getattribute__ = spy  # type: ignore[method-assign,assignment]
        Frozen.model_copy = copy  # type: ignore[method-assign,assignment]
        Config.digest = digest  # type: ignore[method-assign,assignment]
        ijules.config.load_config = load
        try:
            yield self
        finally:
            del Frozen.__getattribute__
            del Frozen.model_copy
            Config.digest = original_digest  # type: ignore[method-assign]
            ijules.config.load_config = original_load


def _is_section(value: Any) -> bool:
    if isinstance(value, BaseModel):
        return True
    return isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values())
