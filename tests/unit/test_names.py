"""Every science registry is keyed by exactly the names in ``models.names`` (the API validates against those)."""

from __future__ import annotations

from models import names
from models.arms import _ARMS
from models.classifiers import _BUILDERS
from models.generators import available_generators
from models.profiles import CLASSIFIER_PROFILES, GENERATOR_PROFILES


def test_registries_cover_exactly_the_names() -> None:
    assert set(_ARMS) == set(names.ARMS)
    assert set(names.GENERATIVE_ARMS) < set(names.ARMS)
    assert set(_BUILDERS) == set(names.CLASSIFIERS)
    assert set(available_generators()) == set(names.GENERATORS) == set(GENERATOR_PROFILES)
    assert set(CLASSIFIER_PROFILES) == set(names.PROFILES)
    assert all(set(names.PROFILES) <= set(profiles) for profiles in GENERATOR_PROFILES.values())
