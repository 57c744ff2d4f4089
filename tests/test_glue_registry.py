"""Tests of proxy_tasks.registry: the nine GLUE tasks, lookup and task lists."""

from __future__ import annotations

import pytest

from proxy_tasks import TASKS, TaskError, TaskSpec, get_task, parse_task_list


def test_registry_has_all_nine_glue_tasks_in_order():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]
    assert all(isinstance(spec, TaskSpec) and spec.name == key for key, spec in TASKS.items())
    assert {spec.glue_dir_name for spec in TASKS.values()} == {
        "CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI"
    }


def test_task_fields_labels_and_metrics():
    assert TASKS["cola"].metrics == ("mcc",)
    assert TASKS["mrpc"].metrics == TASKS["qqp"].metrics == ("accuracy", "f1")
    assert TASKS["stsb"].metrics == ("pearson", "spearman")
    assert TASKS["mnli"].metrics == ("accuracy_matched", "accuracy_mismatched")
    assert TASKS["sst2"].metrics == TASKS["rte"].metrics == ("accuracy",)
    assert TASKS["mnli"].dev_splits == ("dev_matched", "dev_mismatched")
    assert TASKS["rte"].dev_splits == ("dev",)
    assert TASKS["mnli"].labels == ("entailment", "neutral", "contradiction")
    assert TASKS["rte"].labels == TASKS["qnli"].labels == ("entailment", "not_entailment")
    assert TASKS["sst2"].labels == ("0", "1")
    assert TASKS["qqp"].text_fields == ("question1", "question2")
    assert TASKS["qnli"].text_fields == ("question", "sentence")
    assert TASKS["mnli"].text_fields == ("premise", "hypothesis")
    assert TASKS["sst2"].text_fields == ("sentence",)
    assert TASKS["sst2"].hub_path == ("nyu-mll/glue", "sst2")


def test_regression_and_num_labels():
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1
    assert TASKS["stsb"].labels == ()
    assert not TASKS["mnli"].is_regression and TASKS["mnli"].num_labels == 3
    assert TASKS["cola"].num_labels == 2


@pytest.mark.parametrize("name", ["sst2", "SST-2", "Sst2", " sst_2 ", "sst-2"])
def test_get_task_accepts_spellings(name):
    assert get_task(name) is TASKS["sst2"]


def test_get_task_glue_folder_names():
    assert get_task("STS-B").name == "stsb"
    assert get_task("CoLA").name == "cola"
    assert get_task(TASKS["rte"]) is TASKS["rte"]


def test_unknown_task_message_lists_choices():
    with pytest.raises(TaskError) as info:
        get_task("foo")
    assert str(info.value) == (
        "unknown GLUE task 'foo'; choose one of: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli"
    )
    assert isinstance(info.value, ValueError)


def test_parse_task_list_string_and_sequence():
    assert [t.name for t in parse_task_list("sst2,mrpc,rte")] == ["sst2", "mrpc", "rte"]
    assert [t.name for t in parse_task_list(" SST-2 , RTE ,")] == ["sst2", "rte"]
    assert [t.name for t in parse_task_list(["cola", "mnli,qnli"])] == ["cola", "mnli", "qnli"]


def test_parse_task_list_errors():
    with pytest.raises(TaskError, match="unknown GLUE task 'bogus'"):
        parse_task_list("sst2,bogus")
    with pytest.raises(TaskError, match="listed twice"):
        parse_task_list("sst2,SST-2")
    with pytest.raises(TaskError, match="names no task"):
        parse_task_list(" , ")
