"""Hypothesis profiles for the property suite, loaded as a pytest plugin.

The `ci` profile is the default and keeps the whole suite to a few minutes. Select
`thorough` with METANODE_HYPOTHESIS_PROFILE=thorough for many more examples. Each
run prints its seed in the pytest header; rerun a failure with
``pytest --hypothesis-seed=<seed>`` or with the @reproduce_failure blob that
Hypothesis prints. Failing examples are also kept in the local .hypothesis/ database
and replayed first on the next run.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, Verbosity, settings

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    verbosity=Verbosity.normal,
)
PROFILE = os.environ.get("METANODE_HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "thorough"):
    raise ValueError(
        f"METANODE_HYPOTHESIS_PROFILE={PROFILE!r} is not a profile; use ci or thorough"
    )
settings.load_profile(PROFILE)


def pytest_configure(config):
    # Hypothesis draws a fresh seed when none is given; fix one here so that the
    # header can show it and a failing run can be repeated exactly.
    if getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


def pytest_report_header(config):
    seed = config.option.hypothesis_seed
    return (
        f"hypothesis profile {PROFILE!r}, seed {seed} "
        f"(repeat with --hypothesis-seed={seed})"
    )
