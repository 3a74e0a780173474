"""The Discord adapter's one declaration of the generation parameters."""

from __future__ import annotations

import dataclasses
import inspect

from bot.adapter import GenerationInput, _generation_parameters
from bot.exts.imagine import Imagine


def test_imagine_and_refine_offer_the_same_parameters() -> None:
    imagine = [(p.name, p.required, p.type) for p in Imagine.imagine.parameters]
    refine = [(p.name, p.required, p.type) for p in Imagine.refine.parameters]
    assert imagine == refine
    assert imagine[0][:2] == ("prompt", True)


def test_every_declared_parameter_has_a_field_in_generation_input() -> None:
    """A parameter added to the declaration but not to `GenerationInput` would fail only when a
    user runs the command (`GenerationInput(**values)`)."""
    declared = list(inspect.signature(_generation_parameters).parameters)[2:]  # self, interaction
    fields = [f.name for f in dataclasses.fields(GenerationInput)]
    assert declared == fields
