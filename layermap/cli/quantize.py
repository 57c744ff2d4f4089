"""``layermap quantize STUDENT_DIR``: ONNX export and int8 quantisation of a saved student, with its size, latency
and probe scores (:mod:`layermap.deploy.quantize`; needs ``pip install -e ".[deploy]"``)."""

from __future__ import annotations

import argparse
import json

_EXAMPLE = """examples:
  layermap quantize student-246
  layermap quantize student-246 --glue-dir $LAYERMAP_DATA/glue --tasks sst2,mrpc --max-train 2000 --json"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize", help="ONNX export and int8 quantisation of a student: size, latency, probe scores of fp32 and int8",
        description="Export a saved student to ONNX, quantise it to int8 with ONNX Runtime, and report the file sizes, "
                    "the latency of PyTorch fp32, ONNX fp32 and ONNX int8, the ONNX outputs' largest difference from "
                    "PyTorch, and (with --glue-dir or --tasks) the probe-head GLUE dev scores of fp32 and int8 with "
                    "their agreement.  Writes model.onnx, model.int8.onnx and quantize.json into --out.",
        epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("student_dir", metavar="STUDENT_DIR", help="a folder written by 'layermap distill' or save_pretrained")
    p.add_argument("--out", default=None, metavar="DIR", help="where the ONNX files and quantize.json go "
                                                             "(default STUDENT_DIR/onnx)")
    p.add_argument("--config", default=None, help="preset or TOML file: its [latency] and [proxy] sections are used")
    p.add_argument("--glue-dir", default=None, help="local GLUE folder in the standard layout (proxy.glue_dir); with it "
                                                    "the probe scores fp32 and int8 on proxy.tasks")
    p.add_argument("--tasks", default=None, help="comma-separated GLUE tasks to score (proxy.tasks, default "
                                                 "sst2,mrpc,rte)")
    p.add_argument("--max-train", type=int, default=None, help="probe training examples per task (proxy.max_train, "
                                                               "default 2000; 0 = all)")
    p.add_argument("--max-eval", type=int, default=None, help="dev examples per task (proxy.max_eval, default 0 = all)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per timed pass (latency.batch_size, default 1)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (latency.seq_len, default 128)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (latency.threads, default 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed passes first (latency.warmup, default 5)")
    p.add_argument("--repeats", type=int, default=None, help="timed passes, median reported (latency.repeats, default 30)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="latency device (latency.device, default cpu; ONNX Runtime's dynamic int8 runs on the CPU only, "
                        "so cuda is refused)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set latency.repeats=100 (repeatable)")
    p.add_argument("--json", action="store_true", help="print quantize.json instead of a table")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    p.set_defaults(func=quantize_command)


def quantize_command(args: argparse.Namespace) -> int:
    from .common import config_from_args
    from ..deploy.quantize import check_int8_device, load_student, quantize_student

    config = config_from_args(args)
    settings, proxy = config.latency, config.proxy
    tasks = tuple(proxy.tasks) if (args.tasks or proxy.glue_dir) else ()
    if tasks:
        from proxy_tasks import parse_task_list

        tasks = tuple(t.name for t in parse_task_list(list(tasks)))      # an unknown task: one sentence, before work
    check_int8_device(settings)                  # the extra and a CPU latency device: one sentence before any work
    load_student(args.student_dir)               # a folder that is not a model: one sentence before any work
    report = quantize_student(args.student_dir, args.out, settings=settings, tasks=tasks, glue_dir=proxy.glue_dir or None,
                              max_train=proxy.max_train or None, max_eval=proxy.max_eval or None,
                              max_seq_len=proxy.seq_len)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    s = report.settings
    print(f"student {report.student} ({report.shape}) -> {report.out_dir}")
    print(f"size: PyTorch fp32 {report.size_mb['pytorch_fp32']:.2f} MB, ONNX fp32 {report.size_mb['onnx_fp32']:.2f} MB, "
          f"ONNX int8 {report.size_mb['onnx_int8']:.2f} MB")
    print(f"latency on {report.device}, {s.threads} thread(s), batch {s.batch_size} x {s.seq_len} tokens, median of "
          f"{s.repeats} (inter-quartile range):")
    for name, lat in report.latency.items():
        print(f"  {name:<10} {lat.median_ms:8.2f} ms  ({lat.spread_ms:.2f})")
    print("largest |ONNX - PyTorch| on last_hidden_state: "
          + ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items()))
    for t in report.tasks:
        print(f"  {t.task:<6} probe score fp32 {t.fp32:6.2f}   int8 {t.int8:6.2f}   agreement {t.agreement:5.1f} %")
    print(f"wrote {report.out_dir}/quantize.json")
    return 0
