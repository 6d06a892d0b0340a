"""LM pre-training corpora: tokenisers round-trip, tasks load from tiny data written here, bad input is named."""

import gzip
import struct
import zipfile
import zlib

import numpy as np
import pytest

from lra_wavelet.data import audio as au
from lra_wavelet.data import corpora as co
from lra_wavelet.data import maestro, rawaudio, text8
from lra_wavelet.data.standins.rdata import read_lazyload
from lra_wavelet.data.base import StreamSplit
from lra_wavelet.errors import UserError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LRA_WAVELET_CACHE", str(tmp_path / "cache"))
    for var in ("TEXT8_PATH", "MAESTRO_DIR", "AUDIO_DIR", "LRA_DATA"):
        monkeypatch.delenv(var, raising=False)


def _task(cls, **kw):
    return cls(cls.Config(name=cls.registered_name, **kw))


# ============================================================================= text8


def test_text8_normalise_follows_text8():
    assert text8.text8_normalise("Hello, World!\n In 1996 -- Café  déjà_vu") == \
        b"hello world in one nine nine six cafe deja vu"
    ids = text8.text8_ids(b"ab z", "x")
    assert ids.tolist() == [1, 2, 0, 26] and text8.text8_decode(ids) == "ab z"


def _words(n_chars, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "zebra", "quickly", "jumped", "over"]
    out = " ".join(words[i] for i in rng.integers(0, len(words), n_chars // 3))
    return out[:n_chars].strip()


def test_text8_file_splits_90_5_5_and_round_trips(tmp_path):
    text = _words(4000)
    (tmp_path / "text8").write_text(text)
    t = _task(text8.Text8, seq_len=16, data_dir=str(tmp_path))
    s = t.splits()
    assert t.source == "official" and t.kind == "lm" and t.vocab_size == 27 and t.pad_id is None
    n = len(text)
    assert [len(s[k].tokens) for k in co.SPLITS] == [n * 90 // 100, n * 95 // 100 - n * 90 // 100, n - n * 95 // 100]
    assert all(isinstance(v, StreamSplit) for v in s.values())
    assert text8.text8_decode(np.concatenate([s[k].tokens for k in co.SPLITS])) == text


def test_text8_cache_and_zip(tmp_path, monkeypatch):
    text = _words(3000, seed=1)
    with zipfile.ZipFile(tmp_path / "text8.zip", "w") as z:
        z.writestr("text8", text)
    monkeypatch.setenv("TEXT8_PATH", str(tmp_path / "text8.zip"))
    t = _task(text8.Text8, seq_len=8, max_chars=2000)
    s = t.splits()
    assert [len(s[k].tokens) for k in co.SPLITS] == [1800, 100, 100]
    assert text8.text8_decode(s["train"].tokens) == text[:1800]
    monkeypatch.setattr(text8.Text8, "_build_official", lambda *a: pytest.fail("rebuilt instead of using the cache"))
    s2 = _task(text8.Text8, seq_len=8).splits()
    assert isinstance(s2["train"].tokens, np.memmap) and len(s2["train"].tokens) == len(text) * 90 // 100


def test_text8_bad_byte_and_small_corpus_name_the_file(tmp_path):
    bad = tmp_path / "text8"
    bad.write_text("hello World")
    with pytest.raises(UserError, match=r"text8.*'W'.*offset 6"):
        _task(text8.Text8, seq_len=4, path=str(bad)).splits()
    small = tmp_path / "small"
    small.write_text(_words(300))
    with pytest.raises(UserError, match=r"small: the val split has 15 characters, fewer than one window"):
        _task(text8.Text8, seq_len=32, path=str(small)).splits()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: no text8 found"):
        _task(text8.Text8, data_dir=str(tmp_path / "empty")).splits()


def _rser(obj) -> bytes:
    """A tiny R XDR serialiser for the test: str lists -> character, int lists -> integer, dicts -> named list."""
    def item(o):
        if isinstance(o, dict):
            out = struct.pack(">ii", 19 | 1 << 9, len(o)) + b"".join(item(v) for v in o.values())
            sym = struct.pack(">i", 1) + struct.pack(">ii", 9 | 64 << 12, 5) + b"names"
            return out + struct.pack(">i", 2 | 1 << 10) + sym + item(list(o)) + struct.pack(">i", 254)
        if o and isinstance(o[0], str):
            return struct.pack(">ii", 16, len(o)) + b"".join(
                struct.pack(">ii", 9 | 8 << 12, len(s.encode())) + s.encode() for s in o)
        return struct.pack(">ii", 13, len(o)) + struct.pack(f">{len(o)}i", *o)
    return b"X\n" + struct.pack(">iii", 2, 0x40202, 0x20300) + item(obj)


def _fake_debian(root):
    """GCIDE, one kernel doc (+ a translation that must be left out) and an Austen R database under root."""
    d = root / "usr/share/dictd"
    d.mkdir(parents=True)
    gcide = "Coagulate \\Co*ag\"u*late\\, v. t. To cause a liquid to curdle; to clot.\n   [1913 Webster]\n"
    (d / "gcide.dict.dz").write_bytes(gzip.compress((gcide * 40).encode()))
    doc = root / "usr/share/doc/linux-doc-6.1/Documentation"
    (doc / "translations/zh_CN").mkdir(parents=True)
    (doc / "scheduler.rst.gz").write_bytes(gzip.compress(b"The Scheduler\n=====\nRuns 2 tasks per CPU.\n" * 40))
    (doc / "translations/zh_CN/x.rst.gz").write_bytes(gzip.compress(b"translated kernel words\n"))
    lib = root / "usr/lib/R/site-library/janeaustenr/data"
    lib.mkdir(parents=True)
    book = _rser(["EMMA", "", "Emma Woodhouse, handsome, clever, and rich."] * 30)
    blob = struct.pack(">i", len(book)) + zlib.compress(book)
    (lib / "Rdata.rdb").write_bytes(blob)
    (lib / "Rdata.rdx").write_bytes(gzip.compress(_rser({"variables": {"emma": [0, len(blob)]},
                                                          "references": {}, "compressed": [1]})))


def test_text8_stand_in_from_debian_sources(tmp_path, capsys):
    _fake_debian(tmp_path)
    books = read_lazyload(tmp_path / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb")
    assert books["emma"][:3] == ["EMMA", "", "Emma Woodhouse, handsome, clever, and rich."]
    t = _task(text8.Text8, seq_len=8, system_root=str(tmp_path))
    s = t.splits()
    assert t.source == "substitute" and "warning: text8" in capsys.readouterr().err
    n = [len(s[k].tokens) for k in co.SPLITS]
    assert abs(n[1] / sum(n) - 0.05) < 0.01 and abs(n[2] / sum(n) - 0.05) < 0.01
    # the corpus before it is cut into blocks: every source, no translation, no dictionary markup
    t.interleave = lambda ids: {k: ids for k in co.SPLITS}
    text = text8.text8_decode(t._build_substitute(t._substitute_sources(tmp_path))["train"])
    for phrase in ("to cause a liquid to curdle", "runs two tasks per cpu", "emma woodhouse handsome clever"):
        assert phrase in text
    assert "translated" not in text and "webster" not in text and "co ag u late" not in text
    assert sorted(np.concatenate([s[k].tokens for k in co.SPLITS]).tolist()) == sorted(text8.text8_ids(
        text.encode()).tolist())  # the blocks of the three splits are exactly the corpus


def test_text8_stand_in_without_sources_says_how_to_install(tmp_path):
    with pytest.raises(UserError, match="apt-get install -y --no-install-recommends dict-gcide linux-doc-6.1 "
                                        "r-cran-janeaustenr"):
        _task(text8.Text8, system_root=str(tmp_path)).splits()


# ============================================================================= music


def _midi(path, events, tempo=500000, tpb=480, tempo_change=None):
    """Write a type-1 MIDI file with mido: events = (seconds at 120 bpm, kind, channel, a, b) on track 1."""
    mido = pytest.importorskip("mido")
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    meta, track = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [meta, track]
    meta.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    if tempo_change:  # (tick, tempo)
        meta.append(mido.MetaMessage("set_tempo", tempo=tempo_change[1], time=tempo_change[0]))
    now = 0
    for tick, kind, ch, a, b in sorted(events, key=lambda e: e[0]):
        if kind == "cc":
            msg = mido.Message("control_change", channel=ch, control=a, value=b, time=tick - now)
        else:
            msg = mido.Message(kind, channel=ch, note=a, velocity=b, time=tick - now)
        track.append(msg)
        now = tick
    mid.save(str(path))
    return path


def _notes_events(notes, ch=0):
    """(start tick, end tick, pitch, velocity) -> note_on / note_off events (ticks of 1/480 beat)."""
    ev = []
    for s, e, p, v in notes:
        ev += [(s, "note_on", ch, p, v), (e, "note_off", ch, p, 0)]
    return ev


def test_midi_tokens_round_trip_within_10ms(tmp_path):
    from lra_wavelet.data import music as mu

    # 120 bpm, 480 ticks per beat: 1 tick = 1/960 s; chords, a 2.4 s gap, velocity changes, a repeated pitch
    ticks = [(0, 480, 60, 80), (0, 480, 64, 80), (240, 720, 67, 100), (960, 1000, 60, 30),
             (3300, 3800, 72, 127), (3800, 4000, 72, 1), (3801, 3802, 50, 64)]
    ev = _notes_events(ticks) + [(100, "note_on", 9, 36, 100), (200, "note_off", 9, 36, 0)]  # drums: dropped
    path = _midi(tmp_path / "a.mid", ev)
    notes = mu.read_midi(path)
    want = np.array(sorted((s / 960, e / 960, p, v) for s, e, p, v in ticks))
    np.testing.assert_allclose(notes, want, atol=1e-9)
    tokens = mu.notes_to_tokens(notes)
    assert tokens.dtype == np.uint16 and tokens.max() < mu.VOCAB_SIZE
    names = [mu.id_name(i) for i in tokens]
    assert names[:4] == ["VELOCITY(19)", "NOTE_ON(60)", "NOTE_ON(64)", "TIME_SHIFT(250ms)"]
    assert names.count("TIME_SHIFT(1000ms)") == 2  # the 2.39 s gap: 1 s + 1 s + 0.39 s
    back = mu.steps_to_seconds(mu.tokens_to_notes(tokens))  # sorted by (10 ms step, pitch)
    want = want[np.lexsort((want[:, 2], np.rint(want[:, 0] * 100)))]
    assert len(back) == len(want)
    np.testing.assert_array_equal(back[:, 2], want[:, 2])
    assert np.abs(back[:, 0] - want[:, 0]).max() <= 0.005 + 1e-9
    short = want[:, 1] - want[:, 0] < 0.005  # the 1-tick note: lasts one 10 ms step
    assert np.abs(back[~short, 1] - want[~short, 1]).max() <= 0.005 + 1e-9
    np.testing.assert_allclose(back[short, 1] - back[short, 0], 0.01)
    assert np.abs(back[:, 3] - want[:, 3]).max() <= 2
    np.testing.assert_array_equal(mu.tokens_to_notes(tokens), mu.quantise(notes))


def test_midi_tempo_map_and_sustain_pedal(tmp_path):
    from lra_wavelet.data import music as mu

    ev = _notes_events([(0, 480, 60, 90), (960, 1200, 62, 90)])
    ev += [(240, "cc", 0, 64, 127), (1440, "cc", 0, 64, 0)]  # pedal down at 0.25 s, up at 1.5 beats later
    path = _midi(tmp_path / "p.mid", ev, tempo_change=(480, 1000000))  # 60 bpm from beat 1
    # beat 0-1 at 120 bpm = 0.5 s; then 1 s per beat: tick 960 = 1.5 s, 1200 = 2.0 s, 1440 = 2.5 s
    np.testing.assert_allclose(mu.read_midi(path, sustain=False), [[0, 0.5, 60, 90], [1.5, 2.0, 62, 90]])
    np.testing.assert_allclose(mu.read_midi(path, sustain=True), [[0, 2.5, 60, 90], [1.5, 2.5, 62, 90]])


def test_tokeniser_canonical_form():
    from lra_wavelet.data import music as mu

    notes = np.array([[0.0, 0.0, 60, 64],     # zero length -> one step
                      [0.0, 1.0, 62, 64],     # same pitch struck again at 0.5 s -> ends there
                      [0.5, 0.7, 62, 64]])
    q = mu.tokens_to_notes(mu.notes_to_tokens(notes))
    np.testing.assert_array_equal(q, [[0, 1, 60, 15], [0, 50, 62, 15], [50, 70, 62, 15]])
    assert mu.id_name(mu.DOC) == "DOC" and mu.id_name(356 + 31) == "VELOCITY(31)"


def _maestro(root, rows):
    """maestro-v3.0.0.csv + MIDI files; rows = (split, relative path, bytes or notes in ticks)."""
    d = root / "maestro-v3.0.0"
    d.mkdir(parents=True)
    lines = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    for split, rel, content in rows:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (d / rel).write_bytes(content)
        else:
            _midi(d / rel, _notes_events(content))
        lines.append(f"X,Y,{split},2004,{rel},{rel}.wav,1.0")
    (d / "maestro-v3.0.0.csv").write_text("\n".join(lines) + "\n")
    return d


def test_maestro_splits_and_corrupt_file_is_a_counted_skip(tmp_path, capsys):
    from lra_wavelet.data import music as mu

    piece = [(i * 120, i * 120 + 100, 60 + i % 12, 40 + i) for i in range(20)]
    d = _maestro(tmp_path, [("train", "2004/a.midi", piece), ("train", "2004/bad.midi", b"MThd\x00\x00garbage"),
                            ("train", "2004/b.midi", piece[::-1]), ("validation", "2004/c.midi", piece[:15]),
                            ("test", "2004/d.midi", piece[5:])])
    t = _task(maestro.Music, seq_len=16, data_dir=str(tmp_path), workers=1)
    s = t.splits()
    assert t.source == "official" and t.vocab_size == 389
    err = capsys.readouterr().err
    assert "skipped 1 of 5 MIDI files" in err and "bad.midi" in err
    want_val = np.r_[mu.notes_to_tokens(mu.read_midi(d / "2004/c.midi")), mu.DOC]
    np.testing.assert_array_equal(s["val"].tokens, want_val)
    assert (s["train"].tokens == mu.DOC).sum() == 2 and s["train"].tokens.dtype == np.uint16
    # a second load comes from the cache and still reports the skip
    _task(maestro.Music, seq_len=16, data_dir=str(tmp_path)).splits()
    assert "bad.midi" in capsys.readouterr().err


def test_maestro_bad_inputs(tmp_path):
    d = _maestro(tmp_path / "x", [("train", "a.midi", b"not midi"), ("validation", "b.midi", b""),
                                  ("test", "c.midi", b"MThd")])
    with pytest.raises(UserError, match=r"maestro-v3.0.0.csv: no readable MIDI files \(3 of 3 failed, e.g. .*a.midi"):
        _task(maestro.Music, path=str(d), workers=1).splits()
    (d / "maestro-v3.0.0.csv").write_text("split,midi_filename\ntrain,a.midi\ndev,b.midi\n")
    with pytest.raises(UserError, match=r"maestro-v3.0.0.csv:3: split 'dev'"):
        _task(maestro.Music, path=str(d)).splits()
    d2 = _maestro(tmp_path / "y", [(sp, f"{sp}.midi", [(0, 100, 60, 80)]) for sp in ("train", "validation", "test")])
    with pytest.raises(UserError, match=r"maestro-v3.0.0.csv: the train split has 5 tokens, fewer than one window"):
        _task(maestro.Music, path=str(d2), workers=1).splits()


CHORALES = ("bach/bwv281.krn", "bach/bwv165.6.mxl", "bach/bwv66.6.mxl")  # three short scores


@pytest.fixture(scope="module")
def parsed_scores(tmp_path_factory):
    """One cache of parsed music21 scores for the tests of both stand-ins (parsing is the slow part)."""
    return tmp_path_factory.mktemp("music21-notes")


def test_music21_stand_in_split_by_work(tmp_path, capsys, monkeypatch, parsed_scores):
    pytest.importorskip("music21")
    from lra_wavelet.data import music as mu

    monkeypatch.setattr(mu, "music21_cache", lambda: parsed_scores)
    t = _task(maestro.Music, seq_len=16, music21_include=CHORALES, workers=1)
    s = t.splits()
    assert t.source == "substitute" and "warning: music: no MAESTRO folder" in capsys.readouterr().err
    assert all((s[k].tokens == mu.DOC).sum() == 1 for k in co.SPLITS)  # one chorale per split
    q = mu.tokens_to_notes(s["test"].tokens)
    assert len(q) > 20 and set(q[:, 3]) == {int(mu.velocity_bin(mu.DEFAULT_VELOCITY))}
    parts = co.split_works(["m/k1/a.mxl", "m/k1/b.mxl", "x.krn", "y.krn"], 0, None, "w")
    assert sorted(len(v) for v in parts.values()) == [1, 1, 2]  # movements of one work stay together
    assert ["m/k1/a.mxl", "m/k1/b.mxl"] in parts.values()
    with pytest.raises(UserError, match="at least 3 are needed"):
        co.split_works(["m/k1/a.mxl", "m/k1/b.mxl", "x.krn"], 0, None, "w")


# ============================================================================= audio


def _level_gap(q):
    """The round-trip error bound of level q: the larger x-distance from the level to its bin's edges, which lie
    half a step (1/255) away in the companded domain."""
    y = 2 * q / 255.0 - 1
    edge = np.clip(np.stack([y - 1 / 255, y + 1 / 255]), -1, 1)
    x_edge = np.sign(edge) * np.expm1(np.abs(edge) * np.log(256.0)) / 255
    return np.abs(x_edge - au.mu_law_decode(q)).max(axis=0)


def test_mu_law_error_within_half_a_step():
    assert _level_gap(np.arange(256)).max() < 0.022  # at full scale; 1.6e-5 near silence
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-1, 1, 50000), rng.normal(0, 0.01, 50000).clip(-1, 1), np.array([-1.0, 0.0, 1.0])):
        q = au.mu_law_encode(x)
        assert q.dtype == np.uint8
        err = np.abs(x - au.mu_law_decode(q))
        assert np.all(err <= _level_gap(q.astype(np.int64)) + 1e-6)
    assert au.mu_law_encode(np.array([-1.0, 1.0])).tolist() == [0, 255]
    assert np.all(np.diff(au.mu_law_decode(np.arange(256))) > 0)


def test_wav_at_16k_round_trips_through_mu_law(tmp_path):
    sf = pytest.importorskip("soundfile")
    x = (0.8 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000) * np.linspace(0, 1, 8000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    y = au.read_audio(tmp_path / "a.wav")
    np.testing.assert_array_equal(y, x)
    q = au.mu_law_encode(y)
    assert np.all(np.abs(x - au.mu_law_decode(q)) <= _level_gap(q.astype(np.int64)) + 1e-6)


def test_stereo_44k_is_mixed_and_resampled(tmp_path):
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("scipy")
    n = 44100
    t = np.arange(n) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 44100, subtype="PCM_24")
    y = au.read_audio(tmp_path / "s.flac")
    assert len(y) == 16000
    want = 0.4 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y[200:-200] - want[200:-200]).max() < 1e-3
    # reading block by block gives the same samples as resampling the whole file
    np.testing.assert_allclose(au.read_audio(tmp_path / "s.flac", block_seconds=0.1), y, atol=1e-6)
    assert len(au.read_audio(tmp_path / "s.flac", max_seconds=0.25)) == 4000


def _wavs(folder, lengths, sr=16000):
    sf = pytest.importorskip("soundfile")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i, n in enumerate(lengths):
        sf.write(folder / f"f{i:02d}.wav", rng.uniform(-0.5, 0.5, n).astype(np.float32), sr, subtype="FLOAT")


def test_audio_folder_task_skips_non_audio_and_splits_by_file(tmp_path, capsys):
    _wavs(tmp_path / "audio", [1000 + 10 * i for i in range(10)])
    (tmp_path / "audio" / "README.txt").write_text("not audio")
    t = _task(rawaudio.Audio, seq_len=32, data_dir=str(tmp_path))
    s = t.splits()
    assert t.source == "official" and t.vocab_size == 256
    err = capsys.readouterr().err
    assert "skipped 1 of 11 files" in err and "README.txt" in err
    lens = [len(s[k].tokens) for k in co.SPLITS]
    assert sum(lens) == sum(1000 + 10 * i for i in range(10))
    assert all(n in range(1000, 1100) for n in lens[1:])  # one file each in val and test
    capped = _task(rawaudio.Audio, seq_len=32, path=str(tmp_path / "audio"), max_seconds=0.2).splits()
    assert [len(capped[k].tokens) for k in co.SPLITS] == [2880, 160, 160]


def test_audio_folder_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: empty folder"):
        _task(rawaudio.Audio, path=str(tmp_path / "empty")).splits()
    (tmp_path / "text").mkdir()
    for i in range(3):
        (tmp_path / "text" / f"{i}.wav").write_text("not really a wav")
    with pytest.raises(UserError, match=r"text: 0 readable audio file\(s\) \(of 3\).*unreadable: 0.wav"):
        _task(rawaudio.Audio, path=str(tmp_path / "text")).splits()
    _wavs(tmp_path / "tiny", [100, 100, 100])
    with pytest.raises(UserError, match=r"tiny: the train split has 100 samples, fewer than one window"):
        _task(rawaudio.Audio, path=str(tmp_path / "tiny")).splits()


def test_renderers_make_piano_audio():
    notes = np.array([[0.0, 0.5, 60, 100], [0.25, 1.0, 67, 60]])
    y = au.render_additive([notes])[0]
    assert len(y) == 2 * 16000 and abs(np.abs(y).max() - au.PEAK) < 1e-6
    assert np.abs(y[:4000]).max() > 0.1 and np.abs(y[-100:]).max() < 0.01  # sounds, then rings out
    sf2 = au.find_soundfont()
    if au.fluidsynth_binary() is None or sf2 is None:
        pytest.skip("fluidsynth or a GM soundfont not installed")
    pytest.importorskip("mido")
    ys = au.render_fluidsynth([notes, notes[:1]], sf2)
    assert [len(v) for v in ys] == [32000, 24000] and abs(np.abs(ys[0]).max() - au.PEAK) < 1e-6
    onset = np.flatnonzero(np.abs(ys[1]) > 0.05)[0]
    assert onset < 0.02 * 16000  # the note starts at the start of its piece


def test_audio_stand_in_renders_scores(capsys, monkeypatch, parsed_scores):
    pytest.importorskip("music21")
    from lra_wavelet.data import music as mu

    monkeypatch.setattr(mu, "music21_cache", lambda: parsed_scores)
    t = _task(rawaudio.Audio, seq_len=64, music21_include=CHORALES, renderer="additive", max_seconds=20, workers=1)
    s = t.splits()
    assert t.source == "substitute"
    assert "rendered to piano by additive synthesis" in capsys.readouterr().err
    assert [len(s[k].tokens) for k in co.SPLITS] == [int(20 * 16000 * f) for f in (0.9, 0.05, 0.05)]
    x = au.mu_law_decode(s["train"].tokens[:16000])
    assert 0.05 < np.abs(x).max() <= au.PEAK + 0.02  # music, scaled to the peak level
