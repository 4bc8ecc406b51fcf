"""lowrank.book.profiles: a chapter's banner names its profile, commit, date and device."""

import datetime

from lowrank import provenance
from lowrank.book import profiles


def test_banner_names_profile_commit_date_device():
    when = datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC)
    line = profiles.banner("standard", 0, now=when)
    env = provenance.environment()
    assert "profile `standard`" in line and "2026-01-02 03:04 UTC" in line
    assert f"commit `{env['git']}`" in line and env["device"] in line
