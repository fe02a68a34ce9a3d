"""Caption metrics agree with pycocoevalcap run directly; fallback, validation, files.

Most tests need Java (PTB tokenizer, METEOR); CI installs a headless JRE. METEOR's Java
start-up (~15 s, paraphrase table) is paid once by our shared process and once by the
direct pycocoevalcap reference in `test_matches_pycocoevalcap_run_directly`.
"""

import json
import math
import os
import shutil

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from xmodal_keras.evaluation import caption_metrics, meteor_server
from xmodal_keras.evaluation.caption_metrics import METRIC_KEYS, compute_caption_metrics
from xmodal_keras.evaluation.caption_results import write_caption_results
from xmodal_keras.evaluation.caption_tokenization import simple_tokenize, tokenize_captions
from xmodal_keras.evaluation.meteor_server import close_meteor

requires_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="needs Java (PTB tokenizer, METEOR); CI installs a JRE"
)

# Hand-made: 4 images, 3-4 references each, with the punctuation PTB cares about.
REFERENCES = {
    "img_1": [
        "A brown dog runs across the grass.",
        "A dog is running on a lawn!",
        "The dog's legs are a blur, it's running fast.",
    ],
    "img_2": [
        "Two children (a boy and a girl) play in the sand.",
        "Kids playing on the beach; the sun is out.",
        'A boy and a girl build a "sandcastle".',
        "Children can't stop playing at the beach...",
    ],
    "img_3": [
        "A man in a black-and-white shirt rides a bike.",
        "A cyclist -- wearing a helmet -- rides down the street.",
        "Man riding a bicycle on a city street.",
    ],
    "img_4": [
        "A red circle is above a blue square.",
        "A small red circle sits over a large blue square.",
        "There is a blue square under a red circle.",
    ],
}
CANDIDATES = {
    "img_1": "A dog running on the grass.",
    "img_2": "Two kids play in the sand at the beach!",
    "img_3": "A man rides a bike down the street.",
    "img_4": "a red circle above a blue square",
}


def _ptb_reference_dicts(references, candidates):
    """Tokenise exactly as pycocoevalcap's COCOEvalCap.evaluate does (two PTB calls)."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
    return gts, res


def _direct_scores(gts, res, *, meteor=None):
    """pycocoevalcap's scorers called directly: the reference numbers.

    `meteor`: a pycocoevalcap `Meteor()` to score with, or None to skip METEOR.
    """
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu_{n}": value for n, value in enumerate(bleu, start=1)}
    scores["rouge_l"] = Rouge().compute_score(gts, res)[0]
    scores["cider"] = Cider().compute_score(gts, res)[0]
    if meteor is not None:
        scores["meteor"] = meteor.compute_score(gts, res)[0]
    return scores


def _close_direct_meteor(scorer):
    # pycocoevalcap's __del__ kills the JVM but leaves two pipes open (ResourceWarning).
    scorer.meteor_p.stdin.close()
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()
    scorer.meteor_p.stdout.close()
    scorer.meteor_p.stderr.close()


def _meteor_process():
    meteor = meteor_server.SHARED_METEOR._meteor
    return None if meteor is None else meteor.meteor_p


def _no_java(monkeypatch):
    real_which = shutil.which

    def which(cmd, *args, **kwargs):
        return None if cmd == "java" else real_which(cmd, *args, **kwargs)

    monkeypatch.setattr(shutil, "which", which)


# ---------------------------------------------------------------------------------------
# Agreement with pycocoevalcap
# ---------------------------------------------------------------------------------------


@requires_java
def test_matches_pycocoevalcap_run_directly(capfd):
    # Start the reference METEOR JVM first: it loads its paraphrase table while ours does.
    reference_meteor = Meteor()
    try:
        ours = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb")
        assert capfd.readouterr() == ("", "")  # BLEU's prints and Java's chatter stay out
        assert list(ours) == list(METRIC_KEYS)
        assert all(type(value) is float for value in ours.values())

        gts, res = _ptb_reference_dicts(REFERENCES, CANDIDATES)
        # The hand-made example really exercises tokenisation: punctuation is gone, clitics split.
        assert gts["img_1"][2] == "the dog 's legs are a blur it 's running fast"
        assert gts["img_2"][0] == "two children -lrb- a boy and a girl -rrb- play in the sand"
        expected = _direct_scores(gts, res, meteor=reference_meteor)
        assert ours == pytest.approx(expected, rel=0, abs=1e-9)
        # Not a degenerate example: scores are strictly between 0 and their maximum.
        assert 0.1 < ours["bleu_4"] < 0.9 and 0.1 < ours["meteor"] < 0.9 and ours["cider"] > 0.5

        # Same numbers on a second call (the METEOR process is reused) and when auto picks PTB.
        again = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="auto")
        assert again == pytest.approx(ours, rel=0, abs=1e-12)
    finally:
        _close_direct_meteor(reference_meteor)


@requires_java
def test_perfect_candidates():
    candidates = {image_id: refs[0] for image_id, refs in REFERENCES.items()}
    scores = compute_caption_metrics(REFERENCES, candidates, tokenizer="ptb")
    # pycocoevalcap's BleuScorer divides (correct + 1e-15) / (guess + 1e-9) and takes the
    # brevity ratio (len + 1e-15) / (ref_len + 1e-9) < 1, so identical captions score
    # 1 - O(1e-10), never exactly 1.
    for n in range(1, 5):
        assert 1.0 - 1e-9 < scores[f"bleu_{n}"] < 1.0
    assert scores["rouge_l"] == 1.0
    assert scores["meteor"] == pytest.approx(1.0, abs=1e-12)
    assert scores["cider"] > 3.0  # CIDEr-D x10 scale; a perfect caption beats any real one


def test_cider_is_corpus_relative():
    # CIDEr-D's idf comes from the scored set's references: one image alone scores 0.
    one = {"img_4": REFERENCES["img_4"]}
    scores = compute_caption_metrics(
        one, {"img_4": REFERENCES["img_4"][0]}, tokenizer="simple", metrics=("cider",)
    )
    assert scores == {"cider": 0.0}


def test_metrics_subset_skips_the_rest():
    scores = compute_caption_metrics(
        REFERENCES, CANDIDATES, tokenizer="simple", metrics=("cider", "bleu")
    )
    assert list(scores) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider"]


# ---------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------

PUNCTUATION_EXAMPLES = [
    "A man's dog, running (fast) on the grass!",
    'The black-and-white cat can\'t "jump" -- really...',
    "Mr. Smith bought 3.5 kg of apples; [really] {yes} & no.",
    "It's a dog's life: 10% off, $5 each?",
    "Two people's hats   and  U.S.A. e-mail",
    "A red circle is above a blue square.",
    "I'm we're they'll you'd he's isn't won't cannot gonna",
    "hello!!! what?! ok?? a--b a - b a-b",
    "two 5-year-old kids' toys 1,000 10:30 1/2 3.5kg",
    "He said \u201chi\u201d \u2014 and left\u2026 ok",
    "A DOG. A cat.",
    "",
]


def test_simple_tokenizer_known_outputs():
    # Pinned PTB outputs (Stanford CoreNLP 3.4.1 + pycocoevalcap's punctuation removal), so
    # the fallback is checked even where Java is missing.
    assert (
        simple_tokenize(PUNCTUATION_EXAMPLES[0])
        == "a man 's dog running -lrb- fast -rrb- on the grass"
    )
    assert simple_tokenize(PUNCTUATION_EXAMPLES[1]) == "the black-and-white cat ca n't jump really"
    assert (
        simple_tokenize(PUNCTUATION_EXAMPLES[2])
        == "mr. smith bought 3.5 kg of apples -lsb- really -rsb- -lcb- yes -rcb- & no"
    )
    assert simple_tokenize(PUNCTUATION_EXAMPLES[3]) == "it 's a dog 's life 10 % off $ 5 each"
    assert simple_tokenize(PUNCTUATION_EXAMPLES[7]) == "hello !!! what ?! ok ?? a b a b a-b"


@requires_java
def test_simple_tokenizer_equals_ptb_on_punctuation():
    ptb = tokenize_captions(PUNCTUATION_EXAMPLES, tokenizer="ptb")
    # Our PTB runner gives what pycocoevalcap's own PTBTokenizer gives...
    coco = PTBTokenizer().tokenize(
        {i: [{"caption": t}] for i, t in enumerate(PUNCTUATION_EXAMPLES)}
    )
    assert ptb == [coco[i][0] for i in range(len(PUNCTUATION_EXAMPLES))]
    # ... and the pure-Python fallback gives the same.
    assert [simple_tokenize(text) for text in PUNCTUATION_EXAMPLES] == ptb
    assert tokenize_captions(PUNCTUATION_EXAMPLES, tokenizer="simple") == ptb


@requires_java
def test_ptb_keeps_one_line_per_caption():
    # Java reads \r, \f, \v and \u2028 as line breaks; pycocoevalcap's wrapper would shift
    # every later caption. Ours keeps captions aligned.
    texts = ["a dog\rruns", "a cat\u2028sits\fdown", "two\vbirds", "", "last one."]
    assert tokenize_captions(texts, tokenizer="ptb") == [
        "a dog runs",
        "a cat sits down",
        "two birds",
        "",
        "last one",
    ]


def test_fallback_without_java(monkeypatch, caplog):
    _no_java(monkeypatch)
    assert not caption_metrics.java_available()
    with caplog.at_level("WARNING", logger=caption_metrics.__name__):
        scores = compute_caption_metrics(REFERENCES, CANDIDATES)  # tokenizer="auto"
    assert math.isnan(scores["meteor"])
    assert "METEOR needs Java" in caplog.text and "meteor=NaN" in caplog.text

    # The other metrics are pycocoevalcap's scorers on the fallback tokens.
    gts = {k: [simple_tokenize(c) for c in v] for k, v in REFERENCES.items()}
    res = {k: [simple_tokenize(c)] for k, c in CANDIDATES.items()}
    expected = _direct_scores(gts, res)
    del scores["meteor"]
    assert scores == pytest.approx(expected, rel=0, abs=1e-9)

    with pytest.raises(ValueError, match=r"tokenizer='ptb' runs Stanford's PTBTokenizer on Java"):
        compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb")


@requires_java
def test_forced_simple_tokenizer_still_runs_meteor():
    scores = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="simple")
    ptb_scores = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb")
    # The fallback is faithful on this text, so every metric agrees with the PTB path.
    assert scores == pytest.approx(ptb_scores, rel=0, abs=1e-12)


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("references", "candidates", "message"),
    [
        ({}, {}, r"at least one image\. Received: 0 reference ids and 0 candidate ids"),
        (
            {"a": ["x"], "b": ["y"], "c": ["z"]},
            {"a": "x"},
            r"2 ids have references but no candidate: \['b', 'c'\]\. "
            r"Received: 3 reference ids and 1 candidate ids",
        ),
        (
            {"a": ["x"]},
            {"a": "x", "z": "q", **{f"id{i}": "q" for i in range(7)}},
            r"8 ids have a candidate but no references: "
            r"\['id0', 'id1', 'id2', 'id3', 'id4', \.\.\. \(8 in all\)\]",
        ),
        ({"a": []}, {"a": "x"}, r"references\['a'\] must be a non-empty list .* Received: \[\]"),
        (
            {"a": "a dog"},
            {"a": "x"},
            r"references\['a'\] must be a non-empty list .* Received: 'a dog'",
        ),
        (
            {"a": ["x", None]},
            {"a": "x"},
            r"must hold only strings\. Received: None of type NoneType",
        ),
        (
            {"a": ["x"]},
            {"a": ["x"]},
            r"candidates\['a'\] must be one caption string\. Received: \['x'\]",
        ),
        (["x"], {"a": "x"}, r"Received: references of type list, candidates of type dict"),
    ],
)
def test_bad_inputs_raise(references, candidates, message):
    with pytest.raises(ValueError, match=message):
        compute_caption_metrics(references, candidates, tokenizer="simple")


def test_bad_arguments_raise():
    with pytest.raises(
        ValueError, match=r"`tokenizer` must be one of .* Received: tokenizer='nltk'"
    ):
        compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="nltk")
    with pytest.raises(ValueError, match=r"Received: metrics=\('bleu', 'spice'\)"):
        compute_caption_metrics(
            REFERENCES, CANDIDATES, tokenizer="simple", metrics=("bleu", "spice")
        )
    with pytest.raises(ValueError, match=r"Received: metrics=\(\)"):
        compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="simple", metrics=())


# ---------------------------------------------------------------------------------------
# Results files
# ---------------------------------------------------------------------------------------


def test_write_caption_results_round_trip(tmp_path):
    metrics = {"cider": 1.25, "bleu_4": 0.5, "meteor": float("nan")}
    rows = [
        {
            "image_id": "img_1",
            "image_path": tmp_path / "img_1.png",
            "generated": "a dog runs",
            "references": ["A dog runs.", "Un chien \u00e9tonn\u00e9."],
        },
        {"image_id": 7, "generated": "", "references": ["a cat"]},
    ]
    out = tmp_path / "run" / "test"
    paths = write_caption_results(out, metrics, rows)
    assert paths == {"metrics": out / "metrics.json", "captions": out / "captions.jsonl"}
    assert sorted(os.listdir(out)) == ["captions.jsonl", "metrics.json"]  # no temp files left

    text = paths["metrics"].read_text(encoding="utf-8")
    assert text == '{\n  "bleu_4": 0.5,\n  "cider": 1.25,\n  "meteor": null\n}\n'
    assert json.loads(text) == {"bleu_4": 0.5, "cider": 1.25, "meteor": None}

    lines = paths["captions"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "image_id": "img_1",
            "image_path": str(tmp_path / "img_1.png"),
            "generated": "a dog runs",
            "references": ["A dog runs.", "Un chien \u00e9tonn\u00e9."],
        },
        {"image_id": 7, "generated": "", "references": ["a cat"]},
    ]
    assert list(json.loads(lines[0])) == ["image_id", "image_path", "generated", "references"]

    # Writing again replaces both files whole.
    write_caption_results(out, {"cider": 2.0}, rows[1:])
    assert json.loads(paths["metrics"].read_text()) == {"cider": 2.0}
    assert len(paths["captions"].read_text().splitlines()) == 1


def test_write_caption_results_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match=r"rows\[1\] has no 'references' key\. Received: "):
        write_caption_results(
            tmp_path,
            {"cider": 1.0},
            [
                {"image_id": "a", "generated": "x", "references": []},
                {"image_id": "b", "generated": "y"},
            ],
        )
    with pytest.raises(ValueError, match=r"rows\[0\] 'generated' must be a string"):
        write_caption_results(
            tmp_path, {}, [{"image_id": "a", "generated": None, "references": []}]
        )
    with pytest.raises(ValueError, match=r"map names to numbers\. Received: 'cider': 'high'"):
        write_caption_results(tmp_path, {"cider": "high"}, [])
    assert os.listdir(tmp_path) == []  # nothing written when the input is bad


# ---------------------------------------------------------------------------------------
# METEOR process lifetime (keep last: closing it makes the next METEOR call restart Java)
# ---------------------------------------------------------------------------------------


def _child_processes():
    """pid -> state letter ("Z" = zombie) of every child of this Python process (Linux)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children[int(entry)] = fields[0]
    return children


@requires_java
def test_meteor_process_is_reused_then_closed():
    compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb", metrics=("meteor",))
    process = _meteor_process()
    assert process is not None and process.poll() is None
    compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="simple", metrics=("meteor",))
    assert _meteor_process() is process  # reused, not restarted

    close_meteor()
    assert _meteor_process() is None
    assert process.returncode is not None  # killed and reaped: no zombie
    assert process.stdout.closed and process.stderr.closed and process.stdin.closed
    children = _child_processes()
    assert process.pid not in children
    assert "Z" not in children.values()
    close_meteor()  # idempotent


@pytest.mark.slow
@requires_java
def test_meteor_recovers_from_a_dead_or_hung_process(monkeypatch):
    first = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb", metrics=("meteor",))
    process = _meteor_process()
    process.kill()  # died between calls: restarted
    process.wait()
    second = compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb", metrics=("meteor",))
    assert second == first
    process = _meteor_process()
    assert process.poll() is None

    # Hung mid-call: the watchdog kills it, the call raises, the process is reaped.
    monkeypatch.setattr(meteor_server._MeteorServer, "START_TIMEOUT_S", 0.0)
    monkeypatch.setattr(meteor_server._MeteorServer, "TIMEOUT_S_PER_IMAGE", 0.0)
    with pytest.raises(RuntimeError, match=r"METEOR \(java -jar meteor-1\.5\.jar\) timed out"):
        compute_caption_metrics(REFERENCES, CANDIDATES, tokenizer="ptb", metrics=("meteor",))
    assert _meteor_process() is None and process.returncode is not None
    assert process.pid not in _child_processes()
