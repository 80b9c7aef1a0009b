"""`clarion campaign create|update FILE`: a campaign file's personalization, UTM
parameters, topic, labels, delivery policy and the notification's rich fields, in the
words an operator writes (on_missing: suppress, action: delay); a wrong key or value is
one line naming it. `campaign show` and `site show` say the policies in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarion.campaign.v1 import campaign_pb2, site_pb2
from clarion.common.v1 import common_pb2
from clarion.remote import (
    delivery_policy_words,
    policy_words,
    read_campaign_changes,
    read_campaign_file,
)
from services.kit.operator import OperatorError

FULL = """\
notification:
  title: Hi {{ profile.first_name | default('there') }}
  target_url: https://shop.example/sale
  badge_url: https://shop.example/badge.png
  actions:
    - {title: Shop now, url: https://shop.example/now, icon_url: https://shop.example/i.png}
    - {title: Later, url: https://shop.example/later}
  require_interaction: true
  silent: true
  tag: spring
  renotify: true
personalization: {on_missing: suppress}
utm: {source: push, medium: web, campaign: spring, content: hero, term: shoes}
topic: spring-sale
labels: [spring, sale, 2027]
policy:
  ignore_frequency_cap: true
  quiet_hours: {start: 22:00, end: '07:30', action: discard}
  max_per_minute: 1000
  control_group_percent: 10
"""


HOURS = "start: '22:00', end: '07:00'"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return str(path)


class TestCampaignFile:
    def test_every_new_key_in_the_words_an_operator_writes(self, tmp_path: Path) -> None:
        request, _ = read_campaign_file(write(tmp_path, FULL))

        notification = request.notification
        assert notification.badge_url == "https://shop.example/badge.png"
        assert list(notification.actions) == [
            common_pb2.NotificationAction(
                title="Shop now",
                url="https://shop.example/now",
                icon_url="https://shop.example/i.png",
            ),
            common_pb2.NotificationAction(title="Later", url="https://shop.example/later"),
        ]
        assert (notification.require_interaction, notification.silent, notification.renotify) == (
            True,
            True,
            True,
        )
        assert notification.tag == "spring"
        assert request.personalization == campaign_pb2.Personalization(
            on_missing=campaign_pb2.MISSING_VALUE_ACTION_SUPPRESS
        )
        assert request.utm == campaign_pb2.UtmParameters(
            source="push", medium="web", campaign="spring", content="hero", term="shoes"
        )
        assert (request.topic, list(request.labels)) == ("spring-sale", ["spring", "sale", "2027"])
        assert request.policy == campaign_pb2.CampaignPolicy(
            ignore_frequency_cap=True,
            # An unquoted 22:00 is a number to YAML; it is read back as the time.
            quiet_hours=campaign_pb2.QuietHours(
                start="22:00", end="07:30", action=campaign_pb2.QUIET_HOURS_ACTION_DISCARD
            ),
            max_per_minute=1000,
            control_group_percent=10,
        )

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("{on_missing: use_text, missing_value_text: friend}", (1, "friend")),
            ("{onMissing: SUPPRESS}", (2, "")),
            ("{on_missing: MISSING_VALUE_ACTION_USE_TEXT}", (1, "")),
        ],
    )
    def test_on_missing_in_words_or_by_its_name(
        self, tmp_path: Path, given: str, expected: tuple[int, str]
    ) -> None:
        path = write(tmp_path, f"notification: {{title: Hi}}\npersonalization: {given}\n")

        personalization = read_campaign_file(path)[0].personalization

        assert (personalization.on_missing, personalization.missing_value_text) == expected

    @pytest.mark.parametrize(
        ("extra", "says"),
        [
            ("personalization: {on_missing: skip}\n", "is 'skip'; give use_text or suppress"),
            ("personalization: suppress\n", "personalization must be a mapping of on_missing"),
            ("personalization: {missing: x}\n", "personalization takes on_missing"),
            ("utm: {sorce: push}\n", "utm takes source, medium, campaign, content, term; not"),
            ("labels: spring\n", "labels must be a list"),
            ("labels: [{a: b}]\n", "labels[0] must be text"),
            (f"policy: {{quiet_hours: {{{HOURS}, action: snooze}}}}\n", "action is 'snooze'"),
            ("policy: {quiet: {start: '22:00'}}\n", "policy takes ignore_frequency_cap"),
            ("policy: {quiet_hours: {begin: '22:00'}}\n", "policy.quiet_hours takes start, end"),
            ("policy: {quiet_hours: {start: [22], end: '07:00'}}\n", "start must be a time"),
            ("notification: {title: Hi, actions: {title: x}}\n", "must be a list of buttons"),
            ("notification: {title: Hi, actions: [{link: y}]}\n", "actions[0] takes title, url"),
            ("notification: {title: Hi, badge: x}\n", "notification takes title, body"),
        ],
    )  # fmt: skip
    def test_a_wrong_key_or_value_is_one_line_naming_it(
        self, tmp_path: Path, extra: str, says: str
    ) -> None:
        text = extra if extra.startswith("notification") else "notification: {title: Hi}\n" + extra
        path = write(tmp_path, text)

        with pytest.raises(OperatorError) as raised:
            read_campaign_file(path)

        message = str(raised.value)
        assert message.startswith(f"{path}: ") and says in message, message
        assert "\n" not in message


class TestCampaignUpdateFile:
    def test_the_new_keys_are_their_own_paths(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "labels: [autumn]\ntopic: fall\npolicy: {ignore_quiet_hours: true}\n"
            "utm: {source: mail}\nnotification: {actions: [{title: Go, url: https://a.example/}]}\n",
        )

        campaign, paths = read_campaign_changes(path)

        assert paths == ["labels", "topic", "policy", "utm", "notification.actions"]
        assert (list(campaign.labels), campaign.topic) == (["autumn"], "fall")
        assert campaign.policy == campaign_pb2.CampaignPolicy(ignore_quiet_hours=True)
        assert campaign.utm.source == "mail"
        assert [a.title for a in campaign.notification.actions] == ["Go"]

    def test_empty_keys_clear_them(self, tmp_path: Path) -> None:
        path = write(tmp_path, "labels: []\npolicy:\npersonalization:\n")

        campaign, paths = read_campaign_changes(path)

        assert paths == ["labels", "policy", "personalization"]
        assert list(campaign.labels) == []
        assert not campaign.HasField("policy") and not campaign.HasField("personalization")


class TestPolicyWords:
    def test_a_campaigns_policy(self) -> None:
        assert policy_words(campaign_pb2.CampaignPolicy()) == "the site's"
        own = campaign_pb2.CampaignPolicy(
            ignore_frequency_cap=True,
            quiet_hours=campaign_pb2.QuietHours(start="22:00", end="08:00"),
            max_per_minute=50,
            control_group_percent=5,
        )
        assert policy_words(own) == (
            "ignores the site's frequency cap; own quiet hours 22:00 to 08:00 (pushes due "
            "then are delayed); at most 50 a minute; holds out 5% as a control group"
        )
        assert policy_words(campaign_pb2.CampaignPolicy(ignore_quiet_hours=True)) == (
            "ignores quiet hours"
        )

    def test_a_sites_policy(self) -> None:
        assert delivery_policy_words(site_pb2.Site()) == "none"
        site = site_pb2.Site(
            delivery_policy=campaign_pb2.DeliveryPolicy(
                frequency_cap=campaign_pb2.FrequencyCap(per_day=2, per_week=5),
                quiet_hours=campaign_pb2.QuietHours(
                    start="21:00", end="07:00", action=campaign_pb2.QUIET_HOURS_ACTION_DISCARD
                ),
                max_per_minute=100,
            )
        )
        assert delivery_policy_words(site) == (
            "at most 2 a day per person; at most 5 a week per person; quiet hours 21:00 to "
            "07:00 (pushes due then are discarded); at most 100 a minute for the site"
        )
