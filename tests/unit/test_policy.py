"""The team rules that need no Slack or database: who owns what, and who may act on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import policy
from bot.errors import UserFacingError
from tests.conftest import make_settings


def test_the_owner_or_an_admin_may_act_and_nobody_else(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, finetune_admins=["U0ADMIN"])
    assert policy.may_act_on(settings, "U0OWNER", owner="U0OWNER")
    assert policy.may_act_on(settings, "U0ADMIN", owner="U0OWNER")
    assert not policy.may_act_on(settings, "U0OTHER", owner="U0OWNER")
    assert not policy.may_act_on(settings, "", owner=""), "an empty owner is no one's"


def test_a_refusal_names_the_owner_and_what_was_asked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, finetune_admins=[])
    policy.require_owner_or_admin(settings, "U0OWNER", owner="U0OWNER", who="started it", action="cancel job #3")
    with pytest.raises(UserFacingError) as refused:
        policy.require_owner_or_admin(settings, "U0OTHER", owner="U0OWNER", who="started it", action="cancel job #3")
    assert refused.value.sentence == "Only <@U0OWNER>, who started it, or an admin can cancel job #3."
