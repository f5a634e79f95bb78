"""Data preparation for egs/vctk/run.sh: a TSV manifest of VCTK with a held-out set of parallel sentences.

    python egs/vctk/local/prepare.py --vctk /data/VCTK-Corpus-0.92 --out data/vctk [--textgrids mfa/]

Every VCTK speaker reads a different newspaper selection, plus the same short passages (the rainbow
passage and an elicitation paragraph, mic1 ids 001-024 or so). Those shared sentences are found by
their transcript (numbering is not trusted) and the ``--test-sentences`` read by the most speakers
are held out of training for every speaker: ``vqaudio evaluate`` encodes/decodes them, and
``vqaudio eval-convert`` can compare a conversion with the target speaker's own rendition (MCD),
because it pairs renditions by file name. So each held-out rendition gets a link named after the
sentence, ``wavs/<speaker>/shared_<NNN>.<ext>``; all other rows point at the corpus files.

Writes into ``--out`` (unchanged files keep their mtime, so re-running is free):

    manifest.tsv                       path<TAB>speaker<TAB>text<TAB>split (train/valid/test)
    wavs/<speaker>/shared_<NNN>.flac   links to the test renditions
    labels/<speaker>/shared_<NNN>.TextGrid  links to the MFA TextGrids of those (with --textgrids)
    voices.txt                         default voices for conversion: 2 female + 2 male speakers
    speaker-info.txt                   link to the corpus's (age, gender, accent: kept in checkpoints)

Errors the user caused are one line on stderr and exit code 2, as with the vqaudio commands.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from vqaudio.audio import atomic_write_text
from vqaudio.data import SpeakerInfo, Utterance, corpus_speaker_info, scan_vctk, split_utterances
from vqaudio.errors import UserError


def normalise_text(text: str) -> str:
    """Lower case, letters, digits and apostrophes only: punctuation differences between readers vanish."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def sentence_number(utt_id: str) -> str:
    """``p225_006`` -> ``006``."""
    return utt_id.rsplit("_", 1)[-1]


def shared_sentences(utts: list[Utterance], count: int) -> dict[str, str]:
    """The ``count`` transcripts read by the most speakers (at least half of those with transcripts, and
    at least two), as ``{normalised text: name}``; the name is ``shared_<NNN>`` after the id number
    most readers gave it. Ties are broken by that number."""
    readers: dict[str, set[str]] = defaultdict(set)
    numbers: dict[str, Counter[str]] = defaultdict(Counter)
    for u in utts:
        if u.text:
            key = normalise_text(u.text)
            readers[key].add(u.speaker)
            numbers[key][sentence_number(u.utt_id)] += 1
    speakers = len({u.speaker for u in utts if u.text})
    enough = max(2, (speakers + 1) // 2)
    candidates = [t for t, who in readers.items() if len(who) >= enough]
    candidates.sort(key=lambda t: (-len(readers[t]), numbers[t].most_common(1)[0][0], t))
    names: dict[str, str] = {}
    for text in candidates[:count]:
        name = base = f"shared_{numbers[text].most_common(1)[0][0]}"
        while name in names.values():  # two texts usually numbered alike: shared_006, shared_006_2
            name = f"{base}_{len(names)}"
        names[text] = name
    return names


def split_corpus(
    utts: list[Utterance], names: dict[str, str], valid_per_speaker: int, seed: int
) -> tuple[list[tuple[Utterance, str]], list[Utterance], list[Utterance]]:
    """``(test rows as (utterance, sentence name), train, valid)``.

    A speaker's first rendition of a shared sentence is a test row, further renditions are left out.
    Speakers without transcripts (p315) lose the utterances whose id number is a test sentence's usual
    number, so they most likely train on none of them either.
    """
    test: list[tuple[Utterance, str]] = []
    rest: list[Utterance] = []
    seen: set[tuple[str, str]] = set()
    held_numbers = {name.split("_")[1] for name in names.values()}
    for u in utts:
        name = names.get(normalise_text(u.text)) if u.text else None
        if name is not None:
            if (u.speaker, name) not in seen:
                seen.add((u.speaker, name))
                test.append((u, name))
        elif u.text is not None or sentence_number(u.utt_id) not in held_numbers:
            rest.append(u)
    train, valid = split_utterances(rest, valid_per_speaker, seed)
    return test, train, valid


def conversion_voices(speakers: list[str], info: dict[str, SpeakerInfo], count: int = 4) -> list[str]:
    """Two female and two male speakers (lowest ids; speaker-info.txt), topped up with others."""
    gender = {s: (info[s].gender or "").upper() if s in info else "" for s in speakers}
    chosen = [s for s in speakers if gender[s] == "F"][: count // 2]
    chosen += [s for s in speakers if gender[s] == "M"][: count - len(chosen)]
    chosen += [s for s in speakers if s not in chosen][: count - len(chosen)]
    return sorted(chosen)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _clean(text: str | None) -> str:
    return " ".join((text or "").replace("\t", " ").split())


def link_textgrids(test: list[tuple[Utterance, str]], textgrids: Path, out: Path) -> tuple[int, int]:
    """Link each test rendition's TextGrid (``<utt>_mic1`` or ``<utt>`` stem, anywhere below
    ``textgrids``) as ``out/<speaker>/<name>.TextGrid``; returns (linked, missing)."""
    if not textgrids.is_dir():
        raise UserError(f"{textgrids}: TextGrid folder does not exist")
    index = {p.stem.lower(): p for p in textgrids.rglob("*") if p.suffix.lower() == ".textgrid"}
    linked = 0
    for u, name in test:
        found = index.get(u.path.stem.lower()) or index.get(u.utt_id.lower())
        if found is not None:
            _link(out / u.speaker / f"{name}.TextGrid", found.resolve())
            linked += 1
    if linked == 0:
        example = test[0][0] if test else None
        hint = (
            f" (looked for e.g. {example.path.stem}.TextGrid or {example.utt_id}.TextGrid)" if example else ""
        )
        raise UserError(f"{textgrids}: no TextGrid matches a test utterance{hint}")
    return linked, len(test) - linked


def _say(msg: str) -> None:
    print(f"[egs/vctk] {msg}", file=sys.stderr)


def prepare(
    vctk: Path,
    out: Path,
    mic: str = "mic1",
    test_sentences: int = 8,
    valid_per_speaker: int = 2,
    seed: int = 0,
    textgrids: Path | None = None,
) -> None:
    """Write the manifest, the test links, voices.txt and (with ``textgrids``) the label links."""
    _say(f"scanning {vctk} ({mic})")
    utts = scan_vctk(vctk, mic=mic)
    names = shared_sentences(utts, test_sentences)
    if not names:
        raise UserError(
            f"{vctk}: no sentence is read by at least two speakers; cannot hold out parallel ones"
        )
    test, train, valid = split_corpus(utts, names, valid_per_speaker, seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        (u, str(u.path.resolve()), split)
        for split, group in (("train", train), ("valid", valid))
        for u in group
    ]
    for u, name in test:
        link = Path("wavs") / u.speaker / f"{name}{u.path.suffix}"
        _link(out / link, u.path.resolve())
        rows.append((u, link.as_posix(), "test"))
    rows.sort(key=lambda r: (r[0].speaker, r[0].utt_id))
    header = f"# path\tspeaker\ttext\tsplit  (made by egs/vctk/local/prepare.py from {vctk})\n"
    lines = [f"{path}\t{u.speaker}\t{_clean(u.text)}\t{split}\n" for u, path, split in rows]
    atomic_write_text(out / "manifest.tsv", header + "".join(lines))
    speakers = sorted({u.speaker for u, _ in test} & {u.speaker for u in train})
    voices = conversion_voices(speakers, corpus_speaker_info("vctk", vctk))
    info = next(iter(sorted(Path(vctk).glob("**/speaker-info.txt"))), None)
    if info is not None:  # next to the manifest, training keeps gender/accent for `vqaudio speakers`
        _link(out / "speaker-info.txt", info.resolve())
    atomic_write_text(out / "voices.txt", "\n".join(voices) + "\n")
    _say(
        f"{len(train)} train, {len(valid)} valid, {len(test)} test utterances of "
        f"{len({u.speaker for u in utts})} speakers -> {out / 'manifest.tsv'}"
    )
    _say(f"test sentences ({len(names)}, held out for every speaker): {', '.join(sorted(names.values()))}")
    _say(f"conversion voices -> {out / 'voices.txt'}: {', '.join(voices)}")
    if textgrids is not None:
        linked, missing = link_textgrids(test, textgrids, out / "labels")
        _say(f"TextGrids of {linked} test utterances -> {out / 'labels'} ({missing} without one)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vctk", type=Path, required=True, help="VCTK-Corpus-0.92 folder")
    parser.add_argument("--out", type=Path, required=True, help="data folder to write (manifest.tsv ...)")
    parser.add_argument("--mic", default="mic1", choices=("mic1", "mic2"))
    parser.add_argument("--test-sentences", type=int, default=8, help="shared sentences held out (default 8)")
    parser.add_argument("--valid-per-speaker", type=int, default=2, help="validation utterances per speaker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--textgrids", type=Path, help="MFA output: TextGrids named like the VCTK files")
    args = parser.parse_args(argv)
    try:
        if args.test_sentences < 1:
            raise UserError(f"--test-sentences must be >= 1, got {args.test_sentences}")
        prepare(
            args.vctk,
            args.out,
            args.mic,
            args.test_sentences,
            args.valid_per_speaker,
            args.seed,
            args.textgrids,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
