"""Deploy-time settings (hosting/deploy_settings.py): what `modal deploy` may be told, and what not."""

from __future__ import annotations

import pytest

from pictale_server.hosting.deploy_settings import CARDS, DeploySettingError, DeploySettings, usable_cards


def test_the_defaults_are_one_a10g_with_proxy_auth_and_no_gpu_snapshot():
    settings = DeploySettings.from_env({})
    assert settings == DeploySettings(
        gpus=("A10G",), max_containers=1, proxy_auth=True, gpu_snapshot=False, writer_streams=8, vision_streams=4,
    )
    assert settings.gpu == "A10G"


def test_fallbacks_keep_their_order_and_modal_gets_a_list():
    settings = DeploySettings.from_env({"PICTALE_GPU": " a10g , L4,l40s "})
    assert settings.gpus == ("A10G", "L4", "L40S")
    assert settings.gpu == ["A10G", "L4", "L40S"]


def test_what_deploy_saw_reads_back_the_same_in_the_container():
    seen = DeploySettings.from_env(
        {"PICTALE_GPU": "L4,A10G", "PICTALE_MAX_CONTAINERS": "2", "PICTALE_PROXY_AUTH": "OFF", "PICTALE_GPU_SNAPSHOT": "on",
         "PICTALE_WRITER_STREAMS": "12", "PICTALE_VISION_STREAMS": "2"}
    )
    assert DeploySettings.from_env(seen.as_env()) == seen


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("T4", "no bf16"),
        ("A10G,T4", "no bf16"),
        ("A10G:2", "asks for 2 GPUs"),
        ("A10G:1,L4", None),
        ("V100", "not a GPU this deployment knows"),
        ("A10G,,L4", "empty entry"),
        ("A10G,a10g", "listed twice"),
    ],
)
def test_each_gpu_is_checked(value, says):
    if says is None:
        assert DeploySettings.from_env({"PICTALE_GPU": value}).gpus == ("A10G", "L4")
        return
    with pytest.raises(DeploySettingError, match=says):
        DeploySettings.from_env({"PICTALE_GPU": value})


def test_the_error_for_an_unknown_card_lists_the_usable_ones():
    with pytest.raises(DeploySettingError) as refused:
        DeploySettings.from_env({"PICTALE_GPU": "K80"})
    assert "A10G" in str(refused.value) and "T4" not in str(refused.value)


def test_every_usable_card_has_bf16_and_room_for_both_models():
    assert "T4" not in usable_cards()
    for name in usable_cards():
        assert CARDS[name].capability >= (8, 0) and CARDS[name].memory_gb >= 24, name


@pytest.mark.parametrize(("value", "says"), [("0", "at least 1"), ("-1", "at least 1"), ("two", "whole number"), ("1.5", "whole number")])
def test_max_containers_is_a_whole_number_of_at_least_one(value, says):
    with pytest.raises(DeploySettingError, match=says):
        DeploySettings.from_env({"PICTALE_MAX_CONTAINERS": value})
    assert DeploySettings.from_env({"PICTALE_MAX_CONTAINERS": " 4 "}).max_containers == 4


@pytest.mark.parametrize("name", ["PICTALE_PROXY_AUTH", "PICTALE_GPU_SNAPSHOT"])
def test_switches_take_on_or_off_and_nothing_else(name):
    assert getattr(DeploySettings.from_env({name: " On "}), name.removeprefix("PICTALE_").lower()) is True
    assert getattr(DeploySettings.from_env({name: "OFF"}), name.removeprefix("PICTALE_").lower()) is False
    for wrong in ("0", "1", "true", "no"):
        with pytest.raises(DeploySettingError, match=f"{name}={wrong!r}: use on or off"):
            DeploySettings.from_env({name: wrong})


@pytest.mark.parametrize(("value", "says"), [("0", "1 to 16"), ("17", "1 to 16"), ("many", "whole number")])
@pytest.mark.parametrize("name", ["PICTALE_WRITER_STREAMS", "PICTALE_VISION_STREAMS"])
def test_streams_are_one_to_sixteen(name, value, says):
    with pytest.raises(DeploySettingError, match=f"{name}.*{says}"):
        DeploySettings.from_env({name: value})
    field = name.removeprefix("PICTALE_").lower()
    assert getattr(DeploySettings.from_env({name: " 16 "}), field) == 16
