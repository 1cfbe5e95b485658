"""YAML configuration of the ``csv`` source (and the ticker lists of ``yfinance``).

Schema (version 1)::

    version: 1                    # optional; must be 1
    description: free text        # optional
    extends: shared_data.yaml     # optional: start from another config (a path relative to this
                                  # file, or the name of a config shipped in beta_pipeline/configs);
                                  # this file's `universes` entries replace the base's per
                                  # universe, its `market` / `monthly` lists replace the base's
    paths_relative_to: config     # config (default): relative paths are relative to this YAML's
                                  # folder; cwd: relative to the current working directory
    securities: my_master.csv     # optional CSV (symbol,name,sector,asset_class) overriding the
                                  # shipped security master
    universes:                    # equity | crypto | cross_asset -> list of price files
      equity:
        - path: ${DATA_DIR:-data}/prices.csv.gz   # ${VAR} and ${VAR:-default} are expanded
          format: auto            # auto (by extension) | csv | parquet
          layout: long            # long (one row per symbol and date) | wide (date x ticker)
          columns:                # canonical name -> column in the file; null = not in the file.
            date: date            # Unlisted columns are matched case-insensitively by name
            symbol: Name          # (date, symbol/ticker, open, high, low, close, adj close/
            adj_close: null       # adj_close, volume). No adj_close -> adj_close = close.
          symbol: AAPL            # long files without a symbol column: the one symbol they hold
          value: close            # wide only: what the cells are (close | adj_close)
          date_format: "%Y-%m-%d" # strftime format; default ISO 8601
          skiprows: 0             # lines before the header line
          sep: ","
          rename: {BRK.B: BRK-B}  # symbol renames (applied after upper-casing)
          allow_nonpositive: false  # true, false, or a list of symbols (futures can go <= 0)
          asset_class: equity     # default: the universe (cross_asset: the security master's)
    market:                       # daily series, in precedence order: for a series named by
      - path: index.csv           # several files the FIRST file that lists it supplies all of
        format: auto              # it; later copies are ignored (describe() lists them)
        layout: series            # series (a date column + value columns) | long (levels taken
                                  # from a long price file, `series` maps name -> symbol)
        columns: {date: Date}
        series: {mkt_level: Adj Close}   # series name -> column (or symbol for layout long)
        units: percent            # percent | decimal, for return series (all but *_level);
                                  # required when the file has return series
        date_format: null
        allow_nonpositive: false  # for *_level series
      - path: F-F_Research_Data_Factors_daily.CSV
        format: french            # Ken French's raw CSV (header text, YYYYMMDD/YYYYMM dates,
        units: percent            # annual section and footer skipped)
        series: {mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}
    monthly:                      # same as market; dates become the first day of their month
      - path: ff3_monthly.csv
        date_format: "%Y-%m"
        units: percent
        series: {mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}

    # used only by the yfinance source (see beta_pipeline/configs/yfinance.yaml)
    yfinance:
      universes: {equity: [AAPL, MSFT], crypto: [BTC-USD], cross_asset: [CL=F]}
      allow_nonpositive: [CL=F]
      market: {mkt_level: ^GSPC, rf: ^IRX, levels: {mtum: MTUM}}

Errors in the YAML (syntax, unknown keys, bad values, unset variables) raise
``DataValidationError(rule="config_error")`` naming the YAML file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources.base import UNIVERSES

CONFIG_PACKAGE = "beta_pipeline.configs"
PRICE_COLUMN_NAMES = ("date", "symbol", "open", "high", "low", "close", "adj_close", "volume")

_PRICE_KEYS = {
    "path",
    "format",
    "layout",
    "columns",
    "symbol",
    "value",
    "date_format",
    "skiprows",
    "sep",
    "rename",
    "allow_nonpositive",
    "asset_class",
}
_SERIES_KEYS = {
    "path",
    "format",
    "layout",
    "columns",
    "series",
    "units",
    "date_format",
    "skiprows",
    "sep",
    "allow_nonpositive",
    "value",
}
_TOP_KEYS = {
    "version",
    "description",
    "extends",
    "paths_relative_to",
    "securities",
    "universes",
    "market",
    "monthly",
    "yfinance",
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def configs_dir() -> Path:
    """The folder of the YAML configs shipped with the package."""
    return Path(str(resources.files(CONFIG_PACKAGE)))


@dataclass
class PriceFileSpec:
    path: Path
    universe: str
    format: str = "auto"
    layout: str = "long"
    columns: dict[str, str | None] = field(default_factory=dict)
    symbol: str | None = None
    value: str = "close"
    date_format: str | None = None
    skiprows: int = 0
    sep: str = ","
    rename: dict[str, str] = field(default_factory=dict)
    allow_nonpositive: bool | tuple[str, ...] = False
    asset_class: str | None = None
    where: str = ""  # "<yaml>:<line>" for messages

    def parse_key(self) -> tuple[Any, ...]:
        """What changes the parsed result (used as the cache key)."""
        return (
            "prices",
            self.format,
            self.layout,
            tuple(sorted(self.columns.items(), key=lambda kv: kv[0])),
            self.symbol,
            self.value,
            self.date_format,
            self.skiprows,
            self.sep,
            tuple(sorted(self.rename.items())),
            self.allow_nonpositive,
        )


@dataclass
class SeriesFileSpec:
    path: Path
    frequency: str  # daily | monthly
    series: dict[str, str]
    format: str = "auto"
    layout: str = "series"
    columns: dict[str, str | None] = field(default_factory=dict)
    units: str | None = None
    date_format: str | None = None
    skiprows: int = 0
    sep: str = ","
    allow_nonpositive: bool | tuple[str, ...] = False
    value: str = "adj_close"  # layout long: which price becomes the level
    where: str = ""

    def parse_key(self) -> tuple[Any, ...]:
        return (
            "series",
            self.frequency,
            tuple(self.series.items()),
            self.format,
            self.layout,
            tuple(sorted(self.columns.items(), key=lambda kv: kv[0])),
            self.units,
            self.date_format,
            self.skiprows,
            self.sep,
            self.allow_nonpositive,
            self.value,
        )


@dataclass
class SourceConfig:
    path: Path | None
    description: str = ""
    universes: dict[str, list[PriceFileSpec]] = field(default_factory=dict)
    market: list[SeriesFileSpec] = field(default_factory=list)
    monthly: list[SeriesFileSpec] = field(default_factory=list)
    securities: Path | None = None
    yfinance: dict[str, Any] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)  # the YAML files read, base first


# --- YAML loading with line numbers ------------------------------------------------------------


class _LineDict(dict):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file; syntax errors become ``config_error`` with the line."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataValidationError(
            "config_error", f"cannot read config {label}: {exc}", file=label
        ) from exc
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        row = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataValidationError(
            "config_error",
            f"invalid YAML in {label} at line {row}: {problem}",
            file=label,
            row=row,
        ) from exc
    if data is None:
        data = _LineDict()
        data.line = 1
    if not isinstance(data, dict):
        raise DataValidationError(
            "config_error",
            f"{label}: the top level must be a mapping, got {type(data).__name__}",
            file=label,
            row=1,
        )
    return data


def expand_env(value: str, *, where: str, file: str, row: int | None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset ``${VAR}`` is a config error."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = os.environ.get(name)
        if got not in (None, ""):
            return got
        if default is not None:
            return default
        raise DataValidationError(
            "config_error",
            f"{where}: environment variable {name} is not set (write ${{{name}:-default}} "
            "to give a default)",
            file=file,
            row=row,
        )

    return _ENV.sub(sub, value)


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A path to a YAML file, or the name of one shipped in ``beta_pipeline/configs``."""
    p = Path(os.path.expanduser(str(name_or_path)))
    if p.is_file():
        return p.resolve()
    for candidate in (p.name, f"{p.name}.yaml", f"{p.name}.yml"):
        shipped = configs_dir() / candidate
        if p.parent == Path(".") and shipped.is_file():
            return shipped.resolve()
    raise DataValidationError(
        "config_error",
        f"config file {str(name_or_path)!r} not found (neither a file nor one of the shipped "
        f"configs: {', '.join(sorted(x.name for x in configs_dir().glob('*.yaml')))})",
        file=str(name_or_path),
    )


# --- schema ------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, path: Path, relative_to: str) -> None:
        self.path = path
        self.label = str(path)
        self.base = path.parent if relative_to == "config" else Path.cwd()

    def err(self, node: Any, message: str, default_line: int | None = None) -> DataValidationError:
        line = getattr(node, "line", None) or default_line
        return DataValidationError(
            "config_error",
            f"{self.label}, line {line}: {message}",
            file=self.label,
            row=line,
        )

    def file_path(self, raw: Any, node: Any) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise self.err(node, "'path' must be a non-empty string")
        line = getattr(node, "line", None)
        expanded = expand_env(raw, where=f"path {raw!r}", file=self.label, row=line)
        p = Path(os.path.expanduser(expanded))
        if not p.is_absolute():
            p = self.base / p
        return p


def _check_keys(ctx: _Ctx, node: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise ctx.err(
            node, f"unknown key(s) {', '.join(unknown)} in {what}; allowed: {sorted(allowed)}"
        )


def _choice(ctx: _Ctx, node: dict[str, Any], key: str, options: tuple[str, ...], default: str):
    value = node.get(key, default)
    if value not in options:
        raise ctx.err(node, f"{key}={value!r} must be one of {', '.join(options)}")
    return value


def _mapping(ctx: _Ctx, node: dict[str, Any], key: str) -> dict[str, Any]:
    value = node.get(key) or {}
    if not isinstance(value, dict):
        raise ctx.err(node, f"'{key}' must be a mapping")
    return {str(k): (None if v is None else str(v)) for k, v in value.items()}


def _allow(ctx: _Ctx, node: dict[str, Any]) -> bool | tuple[str, ...]:
    value = node.get("allow_nonpositive", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return tuple(str(v).strip().upper() for v in value)
    raise ctx.err(node, "allow_nonpositive must be true, false or a list of symbols")


def _int(ctx: _Ctx, node: dict[str, Any], key: str, default: int) -> int:
    value = node.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ctx.err(node, f"{key} must be a non-negative integer")
    return value


def _price_spec(ctx: _Ctx, node: Any, universe: str) -> PriceFileSpec:
    if not isinstance(node, dict):
        raise ctx.err(node, f"each entry of universes.{universe} must be a mapping with a path")
    _check_keys(ctx, node, _PRICE_KEYS, f"a universes.{universe} entry")
    if "path" not in node:
        raise ctx.err(node, f"a universes.{universe} entry has no 'path'")
    columns = _mapping(ctx, node, "columns")
    bad = sorted(set(columns) - set(PRICE_COLUMN_NAMES))
    if bad:
        raise ctx.err(node, f"unknown canonical column(s) {bad}; use {list(PRICE_COLUMN_NAMES)}")
    rename = {
        k.strip().upper(): str(v).strip().upper() for k, v in _mapping(ctx, node, "rename").items()
    }
    return PriceFileSpec(
        path=ctx.file_path(node["path"], node),
        universe=universe,
        format=_choice(ctx, node, "format", ("auto", "csv", "parquet"), "auto"),
        layout=_choice(ctx, node, "layout", ("long", "wide"), "long"),
        columns=columns,
        symbol=None if node.get("symbol") is None else str(node["symbol"]).strip().upper(),
        value=_choice(ctx, node, "value", ("close", "adj_close"), "close"),
        date_format=node.get("date_format"),
        skiprows=_int(ctx, node, "skiprows", 0),
        sep=str(node.get("sep", ",")),
        rename=rename,
        allow_nonpositive=_allow(ctx, node),
        asset_class=node.get("asset_class"),
        where=f"{ctx.label}:{getattr(node, 'line', '?')}",
    )


def _series_spec(ctx: _Ctx, node: Any, section: str) -> SeriesFileSpec:
    if not isinstance(node, dict):
        raise ctx.err(node, f"each entry of {section} must be a mapping with a path")
    _check_keys(ctx, node, _SERIES_KEYS, f"a {section} entry")
    if "path" not in node:
        raise ctx.err(node, f"a {section} entry has no 'path'")
    series = _mapping(ctx, node, "series")
    if not series:
        raise ctx.err(node, f"a {section} entry needs 'series' (series name -> column)")
    for name, col in series.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or col is None:
            raise ctx.err(node, f"series {name!r}: names are lower_snake_case, columns not null")
    units = node.get("units")
    fmt = _choice(ctx, node, "format", ("auto", "csv", "parquet", "french"), "auto")
    if units is None and fmt == "french":
        units = "percent"
    has_returns = any(not s.endswith("_level") for s in series)
    if units not in (None, "percent", "decimal"):
        raise ctx.err(node, f"units={units!r} must be percent or decimal")
    if has_returns and units is None:
        raise ctx.err(
            node,
            f"{section} entry with return series {sorted(series)} needs units: percent | decimal",
        )
    return SeriesFileSpec(
        path=ctx.file_path(node["path"], node),
        frequency="monthly" if section == "monthly" else "daily",
        series=series,
        format=fmt,
        layout=_choice(ctx, node, "layout", ("series", "long"), "series"),
        columns=_mapping(ctx, node, "columns"),
        units=units,
        date_format=node.get("date_format"),
        skiprows=_int(ctx, node, "skiprows", 0),
        sep=str(node.get("sep", ",")),
        allow_nonpositive=_allow(ctx, node),
        value=_choice(ctx, node, "value", ("close", "adj_close"), "adj_close"),
        where=f"{ctx.label}:{getattr(node, 'line', '?')}",
    )


def load_config(name_or_path: str | os.PathLike[str], _seen: tuple[str, ...] = ()) -> SourceConfig:
    """Read and check a config; relative paths and ``${VAR}`` are resolved now."""
    path = resolve_config_path(name_or_path)
    if str(path) in _seen:
        raise DataValidationError(
            "config_error", f"'extends' loops back to {path}", file=str(path), row=1
        )
    data = load_yaml(path)
    relative_to = data.get("paths_relative_to", "config")
    ctx = _Ctx(path, "config")
    if relative_to not in ("config", "cwd"):
        raise ctx.err(data, f"paths_relative_to={relative_to!r} must be config or cwd", 1)
    ctx = _Ctx(path, relative_to)
    _check_keys(ctx, data, _TOP_KEYS, "the config")
    if data.get("version", 1) != 1:
        raise ctx.err(data, f"version={data.get('version')!r}: only version 1 is supported", 1)

    if data.get("extends"):
        ref = str(data["extends"])
        base_path = path.parent / ref
        cfg = load_config(base_path if base_path.is_file() else ref, (*_seen, str(path)))
    else:
        cfg = SourceConfig(path=None)
    cfg.path = path
    cfg.chain = [*cfg.chain, str(path)]
    if "description" in data:
        cfg.description = str(data["description"])

    universes = data.get("universes") or {}
    if not isinstance(universes, dict):
        raise ctx.err(data, "'universes' must be a mapping universe -> list of files", 1)
    for universe, entries in universes.items():
        if universe not in UNIVERSES:
            raise ctx.err(
                universes, f"unknown universe {universe!r}; use one of {', '.join(UNIVERSES)}"
            )
        if entries is None:
            cfg.universes.pop(universe, None)
            continue
        if not isinstance(entries, list):
            raise ctx.err(universes, f"universes.{universe} must be a list of files")
        cfg.universes[universe] = [_price_spec(ctx, e, universe) for e in entries]

    for section in ("market", "monthly"):
        if section in data:
            entries = data[section] or []
            if not isinstance(entries, list):
                raise ctx.err(data, f"'{section}' must be a list of files", 1)
            setattr(cfg, section, [_series_spec(ctx, e, section) for e in entries])

    if data.get("securities"):
        cfg.securities = ctx.file_path(data["securities"], data)
    if "yfinance" in data:
        yf = data["yfinance"] or {}
        if not isinstance(yf, dict):
            raise ctx.err(data, "'yfinance' must be a mapping", 1)
        allowed = {"universes", "allow_nonpositive", "market", "start"}
        _check_keys(ctx, yf, allowed, "the yfinance block")
        cfg.yfinance = {**cfg.yfinance, **yf}
    return cfg
