"""mlx-lm's and mlx-vlm's own helpers that map a config to its model module
and classes, run from the installed library's source without importing the
module that holds them.

`mlx_lm.utils` (`MODEL_REMAPPING`, `_get_classes`) imports transformers at its
top (mlx_lm/utils.py: `from .tokenizer_utils import TokenizerWrapper`), and so
does `mlx_vlm.utils` (`get_model_type`, `get_model_and_args`,
`update_module_configs`): a second or more per fresh process, and torch
too where PyTorch is installed. The helpers themselves use only the standard library and their
module's own tables, so `definitions()` compiles exactly those top-level
definitions, and the ones they refer to, from the module's source file: the
logic is the installed version's, never a copy. When the module is already
imported, or the definitions need anything beyond the standard library, the
real module is imported and used instead: slower, the same answer.
"""

import ast
import builtins
import importlib
import importlib.util
import symtable
import sys
from pathlib import Path
from typing import Dict, Sequence

LM_UTILS, VLM_UTILS = "mlx_lm.utils", "mlx_vlm.utils"
# what mlxprof takes from each, compiled together (one parse per module)
NAMES = {LM_UTILS: ("MODEL_REMAPPING", "_get_classes"),
         VLM_UTILS: ("get_model_type", "get_model_and_args", "update_module_configs")}
_compiled: Dict[str, dict] = {}


class NotExtractable(Exception):
    """The definitions need more than their module's source and the standard library."""


def definitions(module: str) -> dict:
    """{name: object} for `NAMES[module]`: from the module when it is imported
    already, else compiled from its source (the module imported for real when
    that is not possible)."""
    names = NAMES[module]
    if module not in sys.modules:
        try:
            if module not in _compiled:
                _compiled[module] = _compile(module, names)
            return {n: _compiled[module][n] for n in names}
        except NotExtractable:
            pass
    real = importlib.import_module(module)
    return {n: getattr(real, n) for n in names}


def _helper(module: str, name: str):
    return definitions(module)[name]


def _binds(node) -> set:
    """Names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _is_stdlib(node) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names)
    return node.level == 0 and node.module.split(".")[0] in sys.stdlib_module_names


def _scope_globals(table) -> set:
    """Module-level names a function's or class's body reads (nested scopes included)."""
    if table.get_type() == "function":
        out = {s.get_name() for s in table.get_symbols() if s.is_global()}
    else:  # a class body looks unassigned names up in the module
        out = {s.get_name() for s in table.get_symbols() if s.is_referenced() and not s.is_assigned()}
    for child in table.get_children():
        out |= _scope_globals(child)
    return out


def _needs(node, tables) -> set:
    """Module-level names `node` needs: its body's globals (symtable), and the
    names its decorators, defaults, annotations and bases read at definition."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        table = tables.get((node.name, node.lineno))
        if table is None:
            raise NotExtractable(f"no symbol table for {node.name}")
        outer = [*node.decorator_list]
        if isinstance(node, ast.ClassDef):
            outer += [*node.bases, *(k.value for k in node.keywords)]
        else:
            a = node.args
            outer += [*a.defaults, *(d for d in a.kw_defaults if d is not None), node.returns]
            outer += [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                      if x is not None]
        return _scope_globals(table) | {n.id for o in outer if o is not None for n in ast.walk(o)
                                        if isinstance(n, ast.Name)}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return set()
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _source_path(module: str) -> Path:
    """The source file of `module` (a plain module inside an installed package),
    found from the top-level package's spec: nothing is imported."""
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, *rest.split(".")).with_suffix(".py")
        if path.is_file():
            return path
    raise NotExtractable(f"no source file for {module}")


def _compile(module: str, names: Sequence[str]) -> dict:
    """Run the top-level statements `names` need, taken from `module`'s source."""
    path = _source_path(module)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    tables = {(t.get_name(), t.get_lineno()): t
              for t in symtable.symtable(source, str(path), "exec").get_children()}
    where: Dict[str, list] = {}
    for node in tree.body:
        for name in _binds(node):
            where.setdefault(name, []).append(node)
    picked, seen, todo = [], set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in where:
            if name in names or not hasattr(builtins, name):
                raise NotExtractable(f"{module}: {name} is not a plain top-level definition")
            continue
        for node in where[name]:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not _is_stdlib(node):
                raise NotExtractable(f"{module}: {name} comes from a non-standard-library import")
            if all(node is not p for p in picked):
                picked.append(node)
                todo.extend(_needs(node, tables) - seen)
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    body = future + [n for n in tree.body if any(n is p for p in picked) and n not in future]
    namespace = {"__name__": module, "__file__": str(path), "__builtins__": builtins}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


# -- the helpers mlxprof uses


def lm_model_type(config: dict) -> str:
    """mlx-lm's module name for a config's model_type (its MODEL_REMAPPING)."""
    mt = config["model_type"]
    return _helper(LM_UTILS, "MODEL_REMAPPING").get(mt, mt)


def lm_classes(config: dict):
    """(Model, ModelArgs) as mlx_lm.utils._get_classes resolves them."""
    return _helper(LM_UTILS, "_get_classes")(config=config)


def vlm_model_type(config: dict):
    """mlx_vlm.utils.get_model_type: the normalized model type, or None."""
    return _helper(VLM_UTILS, "get_model_type")(config)


def vlm_model_and_args(config: dict):
    """(architecture module, model_type) as mlx_vlm.utils.get_model_and_args resolves them."""
    return _helper(VLM_UTILS, "get_model_and_args")(config)


def vlm_module_configs(model_config, arch, config: dict, modules):
    """mlx_vlm.utils.update_module_configs: each `<module>_config` of `config`
    as the architecture's own config class."""
    fn = _helper(VLM_UTILS, "update_module_configs")
    return fn(model_config, arch, config, modules)
