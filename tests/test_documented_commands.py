"""Every command shown in the README and in each tool's --help text parses as written.

Each ``python tools/X.py ...`` line is run up to the end of its argument parsing (options and
their order, then its ``key=value`` overrides against the config); running it further needs
datasets or weights, which the tool tests cover at tiny size. ``...`` stands for the config of the
block (or the Rein GTA config).
"""

import argparse
import ast
import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from detectron2.config import LazyConfig

from vltseg_d2.config import apply_overrides

DEFAULT_CONFIG = "configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py"


def _commands(text: str, source: str):
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("python tools/"):
            yield source, shlex.split(line.split("  #")[0], comments=True)


def documented_commands():
    readme = Path("README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    found = [c for block in blocks for c in _commands(block, "README.md")]
    for tool in sorted(Path("tools").glob("*.py")):  # the module docstring is each tool's --help text
        found += list(_commands(ast.get_docstring(ast.parse(tool.read_text())) or "", str(tool)))
    return found


def _load_tool(script: str):
    spec = importlib.util.spec_from_file_location(Path(script).stem + "_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


COMMANDS = documented_commands()


def test_the_readme_and_the_tools_document_commands():
    sources = {source for source, _ in COMMANDS}
    assert "README.md" in sources and "tools/train_net.py" in sources and "tools/demo.py" in sources
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("source, argv", COMMANDS, ids=[f"{s}:{' '.join(a[1:3])}" for s, a in COMMANDS])
def test_documented_command_parses_as_written(source, argv, monkeypatch):
    script, args = argv[1], argv[2:]
    assert Path(script).exists(), f"{source} names {script}, which does not exist"
    config = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config-file"), None)
    if config == "...":
        args[args.index("...")] = config = DEFAULT_CONFIG
    if config:
        assert Path(config).exists(), f"{source}: {config} does not exist"
    tool = _load_tool(script)
    if hasattr(tool, "parse_args"):  # train_net: parsing also validates the overrides
        namespace = tool.parse_args(args)
    else:
        original = argparse.ArgumentParser.parse_args

        def parse_and_stop(self, *a, **k):
            raise _Parsed(original(self, *a, **k))

        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
        with pytest.raises(_Parsed) as parsed:
            tool.main(args)
        namespace = parsed.value.namespace
    overrides = [o for o in (getattr(namespace, "opts", None) or []) if "=" in o]
    if config and overrides:
        apply_overrides(LazyConfig.load(config), overrides)


def test_the_slurm_script_is_valid_bash_and_explains_itself():
    script = Path("tools/slurm_train.sh")
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_the_detectron2_installer_refuses_a_wheel_of_another_hash(tmp_path):
    installer = _load_tool("tools/install_detectron2.py")
    (tmp_path / "sal_detectron2-0.7.2-cp310-none-any.whl").write_bytes(b"not the published wheel")
    with pytest.raises(SystemExit, match="expected 491af0c7"):
        installer.verify(tmp_path / "sal_detectron2-0.7.2-cp310-none-any.whl")


def _parsers_of(script: str):
    """The tool's argument parser (and its sub-commands' parsers), caught at parse time."""
    tool = _load_tool(script)
    if hasattr(tool, "build_parser"):
        parser = tool.build_parser()
    else:
        original = argparse.ArgumentParser.parse_args

        def catch(self, *a, **k):
            raise _Parsed(self)

        argparse.ArgumentParser.parse_args = catch
        try:
            tool.main([])
        except _Parsed as caught:
            parser = caught.namespace
        finally:
            argparse.ArgumentParser.parse_args = original
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    return parsers


UNEXPLAINED = (argparse._HelpAction, argparse._SubParsersAction)  # -h; the sub-commands have their own help


@pytest.mark.parametrize("script", sorted(str(p) for p in Path("tools").glob("*.py")))
def test_every_option_of_every_tool_is_explained_in_our_words(script):
    for parser in _parsers_of(script):
        text = parser.format_help()
        assert "yacs" not in text.lower() and "Whether to attempt" not in text, script  # detectron2's leftovers
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, UNEXPLAINED):
                continue
            assert action.help, f"{script}: {action.option_strings or action.dest} has no help"
            valued = not any(action.default is none for none in (None, False)) and action.default != []
            if action.option_strings and valued:
                assert f"(default: {action.default})" in " ".join(text.split()) or ("default" in action.help), (
                    f"{script}: {action.option_strings} does not show its default {action.default!r}"
                )
