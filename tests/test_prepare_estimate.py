"""The dry run's cost estimate: spoken words at 150 wpm over speed, plus silences."""

from __future__ import annotations

from typing import Any

import pytest

from engine.prepare.estimate import CostEstimate, spoken_words, video_credits, video_seconds


def text(words: int, speed: float | None = None) -> dict[str, Any]:
    voice: dict[str, Any] = {"type": "text", "voice_id": "v", "input_text": " ".join(["w"] * words)}
    if speed is not None:
        voice["speed"] = speed
    return {"voice": voice}


def body(*scenes: dict[str, Any], test: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"video_inputs": list(scenes)}
    if test:
        out["test"] = True
    return out


def test_words_are_spoken_at_150_a_minute_divided_by_speed() -> None:
    assert video_seconds(body(text(150))) == (60.0, 0)
    assert video_seconds(body(text(150, speed=1.5))) == (pytest.approx(40.0), 0)
    assert video_seconds(body(text(75, speed=0.5))) == (pytest.approx(60.0), 0)


def test_silences_add_their_duration_and_audio_scenes_are_counted_as_unknown() -> None:
    scenes = (
        text(25),
        {"voice": {"type": "silence", "duration": 2.5}},
        {"voice": {"type": "silence"}},
        {"voice": {"type": "audio", "audio_url": "https://x/a.mp3"}},
    )

    assert video_seconds(body(*scenes)) == (pytest.approx(10.0 + 2.5 + 1.0), 1)


def test_cjk_text_counts_characters_not_spaces() -> None:
    assert spoken_words("Hello  there,\nfriend") == 3
    assert spoken_words("こんにちは世界") == 3.5
    assert spoken_words("Hi 田中さん") == 1 + 4 / 2


@pytest.mark.parametrize(
    ("seconds", "credits"), [(0.0, 0.5), (30.0, 0.5), (30.1, 1.0), (60.0, 1.0), (95.0, 2.0)]
)
def test_credits_are_billed_in_half_minute_steps_at_least_one(
    seconds: float, credits: float
) -> None:
    assert video_credits(seconds) == credits


def test_a_campaign_total_and_test_videos_cost_no_credits() -> None:
    estimate = CostEstimate()
    estimate.add(body(text(150)))  # 60 s: 1 credit
    estimate.add(body(text(50), {"voice": {"type": "silence", "duration": 20}}))  # 40 s
    estimate.add(body(text(300), test=True))  # 120 s, free
    estimate.add(body({"voice": {"type": "audio", "audio_asset_id": "a"}}))

    assert estimate.videos == 4
    assert estimate.test_videos == 1
    assert estimate.minutes == pytest.approx((60 + 40 + 120) / 60)
    assert estimate.credits == 1.0 + 1.0 + 0.5
    assert estimate.audio_scenes_unknown == 1


def test_a_v3_body_is_estimated_from_its_script_or_its_scenes() -> None:
    words = " ".join(["word"] * 150)
    assert video_seconds({"type": "avatar", "script": words}) == (60.0, 0)
    slow = {"type": "avatar", "script": words, "voice_settings": {"speed": 0.5}}
    assert video_seconds(slow) == (120.0, 0)
    assert video_seconds({"type": "avatar", "audio_url": "https://a/b.mp3"}) == (0.0, 1)
    studio = {
        "type": "studio",
        "scenes": [
            {"type": "avatar_video", "input": {"type": "avatar", "script": words}},
            {"type": "image", "source": {"type": "url", "url": "u"}, "duration": 5},
            {"type": "video", "source": {"type": "url", "url": "v"}},
        ],
    }
    assert video_seconds(studio) == (65.0, 1)
