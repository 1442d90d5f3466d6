"""The commands of a document's Reproduce block, rebuilt from what each result recorded.

Every result records the command line that made it (`provenance.command`,
`mlxprof.cli_options.command_line`), with the paths of the machine that measured it
(`--json /root/out/d/x.decode.json`). The block keeps each command as
recorded but rewrites its paths for a reader of the document:

- the result's own `--json` names the file the result was read from (or
  saved to), relative to the document's folder; a command that wrote no file
  (`--json -`, or none) gets one, so running it leaves the result there;
- any other value naming a recorded result file (the floor's `--decode`)
  names that result's file, and one under a recorded result's stem (the vlm
  step's generated `STEM.image.png`) follows the stem to the document's;
- any other absolute path keeps only its file name: the measuring machine's
  folders mean nothing to the reader.

`mlxprof_command` spells a command the same way, for the report's own steps.
"""

import os
import shlex
from pathlib import Path
from typing import Dict, List, Optional

OWN_OUTPUT = {"report": "--out"}  # the option naming a command's own output; every other command's is --json


def mlxprof_command(name: str, **options) -> str:
    """`mlxprof NAME --opt value …` from option names and values, as the CLI
    records a command: None and False are left out, True is a bare flag, and
    `prompt_tokens` is spelled `--prompt-tokens`."""
    argv = ["mlxprof", name]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return shlex.join(argv)


def split_command(command: str) -> List[str]:
    """The argv of a recorded command. `command_line` joins sys.argv with spaces
    and quotes nothing, so a quote it holds may not pair up: split on spaces then."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def option_value(argv: List[str], option: str) -> Optional[str]:
    """The value given to `option` (`--json F` or `--json=F`), or None."""
    for i, tok in enumerate(argv):
        if tok == option and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith(option + "="):
            return tok[len(option) + 1:]
    return None


def _relative(path: str, doc_dir: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(doc_dir))


class PathMap:
    """Recorded paths → files here: each result's recorded output, and its stem."""

    def __init__(self, doc_dir: Path):
        self.doc_dir = Path(doc_dir)
        self.files: Dict[str, str] = {}
        self.stems: Dict[str, str] = {}

    def add(self, recorded: Optional[str], actual: str, suffix: str = ""):
        if not recorded or recorded == "-":
            return
        self.files[recorded] = actual
        if suffix and recorded.endswith(suffix) and actual.endswith(suffix):
            self.stems[recorded[:-len(suffix)]] = actual[:-len(suffix)]

    def rewrite(self, value: str) -> str:
        if value in self.files:
            return _relative(self.files[value], self.doc_dir)
        for recorded, actual in self.stems.items():
            if value.startswith(recorded + "."):
                return _relative(actual + value[len(recorded):], self.doc_dir)
        return os.path.basename(value) if os.path.isabs(value) else value


def rebuild(command: str, own_file: Optional[str], paths: PathMap) -> str:
    """One recorded command, its own output set to `own_file` and every path rewritten."""
    argv = split_command(command)
    own = OWN_OUTPUT.get(argv[1] if len(argv) > 1 else "", "--json")
    out, i, seen = [], 0, False
    while i < len(argv):
        tok = argv[i]
        if own_file and (tok == own or tok.startswith(own + "=")):
            out += [own, _relative(own_file, paths.doc_dir)]
            seen = True
            i += 1 if "=" in tok else 2
            continue
        if tok.startswith("--") and "=" in tok:
            name, value = tok.split("=", 1)
            out.append(f"{name}={paths.rewrite(value)}")
        else:
            out.append(paths.rewrite(tok))
        i += 1
    if own_file and not seen:
        out += [own, _relative(own_file, paths.doc_dir)]
    return shlex.join(out)


def block(docs: Dict[str, dict], order: List[str], doc_dir: Path, doc_path: Optional[Path] = None) -> List[str]:
    """The lines of the Reproduce block: the whole document's command when it
    was measured, then each result's command, in the document's order.
    `docs["_files"]` maps each kind to the file its result is in."""
    files = docs.get("_files") or {}
    paths = PathMap(doc_dir)
    kinds = [k for k in order if k in docs and "provenance" in docs[k]]
    for kind in kinds:
        recorded = docs[kind]["provenance"].get("command")
        if recorded and kind in files:
            paths.add(option_value(split_command(recorded), "--json"), str(files[kind]), f".{kind}.json")
    lines = []
    if docs.get("_command"):
        lines += ["# the whole document:", rebuild(docs["_command"], str(doc_path) if doc_path else None, paths),
                  "# each table:"]
    for kind in kinds:
        recorded = docs[kind]["provenance"].get("command")
        lines.append(rebuild(recorded, files.get(kind) and str(files[kind]), paths) if recorded
                     else f"# ({kind}: command not recorded)")
    return lines
