import numpy as np

from adcut.demo.synth import EpisodeSpec, episode_segments, write_long_mp3
from adcut.media.decode import decode, probe


def test_long_mp3_is_written_minute_by_minute_with_its_ads_where_the_spec_says(tmp_path):
    path = tmp_path / "long.mp3"
    spec = EpisodeSpec(150.0, ((70.0, 100.0),))
    write_long_mp3(path, spec, sample_rate=22050, channels=2, bit_rate=64_000)
    info = probe(path)
    assert (info.sample_rate, info.channels) == (22050, 2)
    assert abs(info.duration - 150.0) < 0.1
    # Ads are louder than content (a music bed under the speech): the ad break stands out in level.
    samples = decode(path, 4096)
    rms = lambda a, b: float(np.sqrt(np.mean(samples[int(a * 4096) : int(b * 4096)] ** 2)))  # noqa: E731
    assert rms(75, 95) > 1.5 * rms(10, 60) and rms(75, 95) > 1.5 * rms(105, 145)
    assert [s.label for s in episode_segments(spec)] == ["content", "ad", "content"]
