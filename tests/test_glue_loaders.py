"""Tests of proxy_tasks.data: local GLUE TSV quirks, subsampling, fingerprints, the hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy_tasks import Example, TaskError, data_fingerprint, load_task

BOM = "\ufeff"


def _write(root: Path, relative: str, text: str) -> Path:
    """Write ``text`` as UTF-8 bytes (no newline translation) to ``root/relative``."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _sst2(root: Path, n_train: int = 4) -> Path:
    rows = "".join(f"sentence number {i} \t{i % 2}\n" for i in range(n_train))
    _write(root, "SST-2/train.tsv", "sentence\tlabel\n" + rows)
    _write(root, "SST-2/dev.tsv", 'sentence\tlabel\na "quoted word\t1\nit \'s bad , really \t0\n')
    return root


# ---------------------------------------------------------------- quirks, one per task


def test_sst2_header_and_unquoted_quotes(tmp_path):
    _write(tmp_path, "SST-2/train.tsv", 'sentence\tlabel\nit \'s "good" \t1\nbad movie \t0\n')
    _write(tmp_path, "SST-2/dev.tsv", 'sentence\tlabel\na "quoted word\t1\n')
    data = load_task("SST-2", tmp_path)
    assert data.task.name == "sst2"
    assert data.train == (Example('it \'s "good" ', None, 1), Example("bad movie ", None, 0))
    assert data.dev == {"dev": (Example('a "quoted word', None, 1),)}
    assert data.source == str(tmp_path.resolve())
    assert isinstance(data.train[0].label, int)


def test_cola_no_header_and_no_final_newline(tmp_path):
    _write(tmp_path, "CoLA/train.tsv", "gj04\t1\t\tOur friends won't buy it.\ngj04\t0\t*\tHim left.\n")
    _write(tmp_path, "CoLA/dev.tsv", "w_80\t1\t\tJohn left.\nw_80\t0\t*\tLeft John the.")
    data = load_task("cola", tmp_path)
    assert [e.label for e in data.train] == [1, 0]
    assert data.train[0].text_a == "Our friends won't buy it."
    assert data.dev["dev"] == (Example("John left.", None, 1), Example("Left John the.", None, 0))


def test_mrpc_header_with_bom(tmp_path):
    header = BOM + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    _write(tmp_path, "MRPC/train.tsv", header + "1\t7\t8\tHe said \" yes \" .\tHe agreed .\n")
    _write(tmp_path, "MRPC/dev.tsv", header + "0\t1\t2\tA cat .\tA dog .\n")
    data = load_task("mrpc", tmp_path)
    assert data.train == (Example('He said " yes " .', "He agreed .", 1),)
    assert data.dev["dev"] == (Example("A cat .", "A dog .", 0),)


def test_rte_string_labels_map_to_hf_ids(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    _write(tmp_path, "RTE/train.tsv", header + "0\tA b.\tA.\tentailment\n1\tC d.\tE.\tnot_entailment\n")
    _write(tmp_path, "RTE/dev.tsv", header + "0\tX.\tY.\tnot_entailment\r\n")  # CRLF tolerated
    data = load_task("rte", tmp_path)
    assert [e.label for e in data.train] == [0, 1]
    assert data.dev["dev"] == (Example("X.", "Y.", 1),)


def test_mnli_dev_matched_and_mismatched(tmp_path):
    header = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
        "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    )

    def row(i, premise, hypothesis, label):
        return f"{i}\t1\t1a\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{premise}\t{hypothesis}\t{label}\t{label}\n"

    _write(tmp_path, "MNLI/train.tsv", header + row(0, "P0", "H0", "contradiction") + row(1, "P1", "H1", "neutral"))
    _write(tmp_path, "MNLI/dev_matched.tsv", header + row(0, "Pm", "Hm", "entailment"))
    _write(tmp_path, "MNLI/dev_mismatched.tsv", header + row(0, "Px", "Hx", "contradiction"))
    data = load_task("mnli", tmp_path)
    assert data.train == (Example("P0", "H0", 2), Example("P1", "H1", 1))
    assert list(data.dev) == ["dev_matched", "dev_mismatched"]
    assert data.dev["dev_matched"] == (Example("Pm", "Hm", 0),)
    assert data.dev["dev_mismatched"] == (Example("Px", "Hx", 2),)
    assert data.num_eval == 2


def test_stsb_float_scores(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane.\t{}\n"
    _write(tmp_path, "STS-B/train.tsv", header + row.format("5.000") + row.format("0.4"))
    _write(tmp_path, "STS-B/dev.tsv", header + row.format("3.8"))
    data = load_task("stsb", tmp_path)
    assert [e.label for e in data.train] == [5.0, 0.4]
    assert data.dev["dev"] == (Example("A plane.", "An air plane.", 3.8),)
    _write(tmp_path, "STS-B/dev.tsv", header + row.format("high"))
    with pytest.raises(TaskError, match=r"dev\.tsv line 2: score 'high'"):
        load_task("stsb", tmp_path)


def test_qnli_question_sentence_header(tmp_path):
    header = "index\tquestion\tsentence\tlabel\n"
    _write(tmp_path, "QNLI/train.tsv", header + "0\tWho?\tHe did.\tentailment\n")
    _write(tmp_path, "QNLI/dev.tsv", header + "0\tWhen?\tBlue.\tnot_entailment\n")
    data = load_task("qnli", tmp_path)
    assert data.train == (Example("Who?", "He did.", 0),)
    assert data.dev["dev"] == (Example("When?", "Blue.", 1),)


def test_qqp_skips_rows_with_missing_fields_with_warning(tmp_path):
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    _write(tmp_path, "QQP/train.tsv", header + "1\t1\t2\tA?\tB?\t1\n2\t3\t4\tC?\n3\t5\t6\tD?\tE?\t0\n")
    _write(tmp_path, "QQP/dev.tsv", header + "9\t1\t2\tX?\tY?\t0\n")
    with pytest.warns(UserWarning, match=r"skipped 1 QQP row\(s\).*line 3"):
        data = load_task("qqp", tmp_path)
    assert data.train == (Example("A?", "B?", 1), Example("D?", "E?", 0))


# ---------------------------------------------------------------- errors


def test_malformed_row_names_file_and_line(tmp_path):
    _sst2(tmp_path)
    path = _write(tmp_path, "SST-2/train.tsv", "sentence\tlabel\nfine\t1\ntoo\tmany\tfields\t0\n")
    with pytest.raises(TaskError) as info:
        load_task("sst2", tmp_path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "4 tab-separated field(s) but 2" in message


def test_unknown_label_names_file_line_and_label(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    path = _write(tmp_path, "RTE/train.tsv", header + "0\tA.\tB.\tentailment\n1\tC.\tD.\tmaybe\n")
    _write(tmp_path, "RTE/dev.tsv", header + "0\tX.\tY.\tentailment\n")
    with pytest.raises(TaskError) as info:
        load_task("rte", tmp_path)
    assert f"{path} line 3: label 'maybe'" in str(info.value)
    assert "'entailment', 'not_entailment'" in str(info.value)


def test_blank_lines_only_final_one_skipped(tmp_path):
    _sst2(tmp_path)
    _write(tmp_path, "SST-2/train.tsv", "sentence\tlabel\nok\t1\n\n")
    assert len(load_task("sst2", tmp_path).train) == 1
    _write(tmp_path, "SST-2/train.tsv", "sentence\tlabel\nok\t1\n\nalso\t0\n")
    with pytest.raises(TaskError, match="line 3 is blank"):
        load_task("sst2", tmp_path)


def test_missing_header_column(tmp_path):
    _sst2(tmp_path)
    _write(tmp_path, "SST-2/train.tsv", "text\tlabel\nok\t1\n")
    with pytest.raises(TaskError, match="has no column 'sentence'"):
        load_task("sst2", tmp_path)


def test_missing_split_and_missing_folder(tmp_path):
    _write(tmp_path, "SST-2/train.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(TaskError) as info:
        load_task("sst2", tmp_path)
    assert "has no SST-2/dev.tsv" in str(info.value) and "--glue-dir" in str(info.value)
    with pytest.raises(TaskError, match="does not exist"):
        load_task("sst2", tmp_path / "nowhere")


def test_bad_limits_rejected(tmp_path):
    _sst2(tmp_path)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(TaskError, match="max_train"):
            load_task("sst2", tmp_path, max_train=bad)


# ---------------------------------------------------------------- subsampling, fingerprint


def test_subsampling_is_seeded_sorted_and_sized(tmp_path):
    _sst2(tmp_path, n_train=50)
    full = load_task("sst2", tmp_path).train
    first = load_task("sst2", tmp_path, max_train=10, seed=3).train
    again = load_task("sst2", tmp_path, max_train=10, seed=3).train
    other = load_task("sst2", tmp_path, max_train=10, seed=4).train
    assert len(first) == 10 and first == again and first != other
    positions = [full.index(example) for example in first]
    assert positions == sorted(positions)  # original order kept
    assert load_task("sst2", tmp_path, max_train=500).train == full  # limit above size: all
    limited_dev = load_task("sst2", tmp_path, max_eval=1).dev["dev"]
    assert len(limited_dev) == 1


def test_fingerprint_tracks_file_bytes(tmp_path, monkeypatch):
    _sst2(tmp_path)
    first = data_fingerprint("sst2", tmp_path)
    assert len(first) == 64 and first == data_fingerprint("SST-2", str(tmp_path))
    _write(tmp_path, "SST-2/dev.tsv", "sentence\tlabel\nchanged\t1\n")
    assert data_fingerprint("sst2", tmp_path) != first
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                     # no Hub and no cached copy: by name only
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(var, raising=False)
    assert data_fingerprint("mnli", None) == "nyu-mll/glue/mnli@main"


# ---------------------------------------------------------------- hub path, no network


def test_hub_loader_with_fake_load_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append(args)
        split = lambda n, offset: datasets.Dataset.from_dict(  # noqa: E731
            {
                "premise": [f"p{offset + i}" for i in range(n)],
                "hypothesis": [f"h{offset + i}" for i in range(n)],
                "label": [i % 3 for i in range(n)],
                "idx": list(range(n)),
            }
        )
        return datasets.DatasetDict(
            {
                "train": split(20, 0),
                "validation_matched": split(3, 100),
                "validation_mismatched": split(2, 200),
                "test_matched": split(1, 300),
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task("mnli", max_train=5, seed=1)
    assert calls == [("nyu-mll/glue", "mnli")]
    assert data.source == "nyu-mll/glue/mnli"
    assert len(data.train) == 5 and data.train == load_task("mnli", max_train=5, seed=1).train
    assert list(data.dev) == ["dev_matched", "dev_mismatched"]
    assert data.dev["dev_matched"] == (Example("p100", "h100", 0), Example("p101", "h101", 1), Example("p102", "h102", 2))
    assert data.dev["dev_mismatched"][1] == Example("p201", "h201", 1)
    assert all(isinstance(e.label, int) for e in data.train)


def test_hub_single_sentence_and_unlabelled_rows(monkeypatch):
    datasets = pytest.importorskip("datasets")
    train = {"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]}
    unlabelled = {"sentence": ["fine", "odd"], "label": [1, -1], "idx": [0, 1]}
    fake = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(train), "validation": datasets.Dataset.from_dict(unlabelled)}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    data = load_task("sst2", max_eval=1, seed=1)  # seed 1 keeps validation row 0 only
    assert data.train == (Example("good", None, 1), Example("bad", None, 0))
    assert data.dev["dev"] == (Example("fine", None, 1),)
    with pytest.raises(TaskError, match=r"\[validation\] row 1 has label -1"):
        load_task("sst2")


def test_hub_unreachable_raises_task_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(TaskError) as info:
        load_task("rte")
    assert "Hugging Face Hub" in str(info.value) and "--glue-dir" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


# ---------------------------------------------------------------- real data


def _real_glue_dir() -> Path:
    override = os.environ.get("LAYERMAP_GLUE_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("task", "n_train", "n_dev"),
    [("sst2", 67349, 872), ("rte", 2490, 277)],
)
def test_real_glue_row_counts_and_labels(task, n_train, n_dev):
    glue_dir = _real_glue_dir()
    folder = {"sst2": "SST-2", "rte": "RTE"}[task]
    if not (glue_dir / folder / "train.tsv").is_file():
        pytest.skip(f"real GLUE data folder {glue_dir / folder} is absent (set LAYERMAP_GLUE_DIR)")
    data = load_task(task, glue_dir)
    assert len(data.train) == n_train and len(data.dev["dev"]) == n_dev
    assert {e.label for e in data.train} == {0, 1} == {e.label for e in data.dev["dev"]}
    if task == "sst2":
        assert sum(e.label for e in data.train) == 37569  # positives, per the data README
    else:
        assert all(e.text_b for e in data.train)
        assert sum(e.label == 0 for e in data.train) == 1249  # entailment
