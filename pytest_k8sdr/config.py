"""The plugin's settings: one option set, four sources, validated before anything is touched.

Every option is available as an ini key (``k8sdr_<name>``), an environment variable
(``K8SDR_<NAME>``), a command-line option (``--k8sdr-<name>``) and a keyword of the
``k8sdr(...)`` marker. Precedence: ini < environment < command line < marker.

Session-wide options (the backend and how to reach the cluster) cannot be changed by one test:
a marker that asks for another value restricts the test to sessions that have it. A marker may
only narrow the context allowlist, never widen it: the allowlist is the operator's safety.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_k8sdr.errors import ConfigError

Kind = Literal["choice", "str", "path", "list", "int", "lines", "duration"]
Source = Literal["default", "ini", "env", "cli", "marker"]

BACKENDS = ("sim", "kind", "kubeconfig")
ON_OFF = ("on", "off")
PROFILES = ("fast", "upstream")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")
# RFC 1123 label (namespace names): lower-case alphanumerics and '-', at most 63 characters.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SELECTOR_TERM = re.compile(
    r"^\s*(!?[A-Za-z0-9./_-]+|[A-Za-z0-9./_-]+\s*(==|=|!=)\s*[A-Za-z0-9._-]*"
    r"|[A-Za-z0-9./_-]+\s+(in|notin)\s+\([A-Za-z0-9._,\s-]*\))\s*$"
)


def parse_duration(value: float | str) -> float:
    """Seconds from `12`, `12.5`, `"90s"`, `"250ms"` or `"2m"`; ConfigError otherwise."""
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"a duration cannot be negative: {value}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use e.g. 30, '30s', '500ms', '2m')")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}[unit]


@dataclass(frozen=True)
class SteadyStateProbe:
    """One line of a steady-state hypothesis: a PromQL query and the threshold it must keep.

    Every series the query returns must satisfy `value OP threshold`; a query that returns
    nothing does not hold (no data is no evidence of health). `$namespace` in the query stands
    for the test's namespace.
    """

    name: str
    query: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether `value` keeps the threshold."""
        return {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.op]

    def describe(self) -> str:
        """``name: query OP threshold``, as it is written in the settings."""
        named = f"{self.name}: " if self.name != self.query else ""
        return f"{named}{self.query} {self.op} {self.threshold:g}"


# `[name: ] query OP number`. A name is words before ": " (PromQL's own colons, in recording
# rule names and subqueries, are never followed by a space).
_PROBE = re.compile(
    r"^(?:(?P<name>[A-Za-z][\w .-]*?)\s*:\s+)?(?P<query>.+?)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


def parse_steady_state(lines: tuple[str, ...], where: str) -> tuple[SteadyStateProbe, ...]:
    """The probes of a hypothesis, one per line; ConfigError naming the line that is wrong."""
    probes = []
    for line in lines:
        match = _PROBE.match(line)
        if match is None:
            raise ConfigError(
                f"invalid value {line!r} for steady_state ({where}); expected "
                "'name: PromQL OP number' with OP one of <, <=, >, >= "
                '(e.g. \'error ratio: sum(rate(http_requests_total{code=~"5.."}[1m])) / '
                "sum(rate(http_requests_total[1m])) < 0.01')"
            )
        query = match.group("query").strip()
        probes.append(
            SteadyStateProbe(
                (match.group("name") or query).strip(),
                query,
                match.group("op"),
                float(match.group("number")),
            )
        )
    return tuple(probes)


@dataclass(frozen=True)
class PrometheusAuth:
    """How to authenticate to Prometheus: a bearer token, or basic auth. Never from the ini."""

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


PROMETHEUS_TOKEN = "K8SDR_PROMETHEUS_TOKEN"
PROMETHEUS_USERNAME = "K8SDR_PROMETHEUS_USERNAME"
PROMETHEUS_PASSWORD = "K8SDR_PROMETHEUS_PASSWORD"


def prometheus_auth(environ: Mapping[str, str]) -> PrometheusAuth:
    """Prometheus credentials from the environment; ConfigError naming the variables."""
    token = environ.get(PROMETHEUS_TOKEN) or None
    username = environ.get(PROMETHEUS_USERNAME) or None
    password = environ.get(PROMETHEUS_PASSWORD) or None
    if token and (username or password):
        raise ConfigError(
            f"both {PROMETHEUS_TOKEN} and {PROMETHEUS_USERNAME}/{PROMETHEUS_PASSWORD} are set: "
            "Prometheus takes a bearer token or basic auth, not both"
        )
    if (username is None) != (password is None):
        given, missing = (
            (PROMETHEUS_USERNAME, PROMETHEUS_PASSWORD)
            if username
            else (PROMETHEUS_PASSWORD, PROMETHEUS_USERNAME)
        )
        raise ConfigError(f"{given} is set without {missing}: basic auth needs both")
    return PrometheusAuth(token, username, password)


@dataclass(frozen=True)
class Option:
    """One setting and how each source names it."""

    name: str
    help: str
    kind: Kind = "str"
    default: str | None = None
    choices: tuple[str, ...] = ()
    session_wide: bool = False

    @property
    def ini_key(self) -> str:
        """The ini key, ``k8sdr_<name>``."""
        return f"k8sdr_{self.name}"

    @property
    def env_var(self) -> str:
        """The environment variable, ``K8SDR_<NAME>``."""
        return f"K8SDR_{self.name.upper()}"

    @property
    def cli_flag(self) -> str:
        """The command-line option, ``--k8sdr-<name>``."""
        return "--k8sdr-" + self.name.replace("_", "-")

    def names(self) -> str:
        """All four spellings, for error messages."""
        return (
            f"{self.cli_flag} / {self.env_var} / ini {self.ini_key} / marker k8sdr({self.name}=...)"
        )


OPTIONS: tuple[Option, ...] = (
    Option(
        "backend",
        "where the cluster comes from: sim (embedded simulated cluster), kind, kubeconfig",
        kind="choice",
        default="sim",
        choices=BACKENDS,
        session_wide=True,
    ),
    Option(
        "kubeconfig",
        "kubeconfig file for the kubeconfig backend (default: $KUBECONFIG or ~/.kube/config)",
        kind="path",
        session_wide=True,
    ),
    Option(
        "context",
        "kubeconfig context to use (default: the kubeconfig's current-context)",
        session_wide=True,
    ),
    Option(
        "allowed_contexts",
        "comma-separated contexts on which disruptive tests may run (kubeconfig backend)",
        kind="list",
        default="",
    ),
    Option(
        "kind_cluster",
        "kind backend: use this existing kind cluster instead of creating one",
        session_wide=True,
    ),
    Option(
        "namespace",
        "namespace for test workloads (default: a fresh namespace per test)",
    ),
    Option(
        "profile",
        "timing profile: fast (seconds; the simulator's and kind's fast timings) or upstream",
        kind="choice",
        default="fast",
        choices=PROFILES,
        session_wide=True,
    ),
    Option(
        "report_dir",
        "directory for timelines and reports (default: none written)",
        kind="path",
    ),
    Option(
        "recorder",
        "watch nodes, pods, endpoints and events during each test for its timeline: on or off",
        kind="choice",
        default="on",
        choices=ON_OFF,
    ),
    Option(
        "slos",
        "per-phase SLO overrides, comma-separated, e.g. 'fail=60s,self-heal=5m,drain LB=20s'",
        kind="list",
        default="",
    ),
    Option(
        "machines",
        "machine inventory (YAML) mapping nodes to drivers (default: sim on sim, docker on kind)",
        kind="path",
        session_wide=True,
    ),
    Option(
        "sim_config",
        "sim backend: a kind Cluster config (kind.x-k8s.io/v1alpha4) giving the nodes: roles, "
        "labels, zones (topology.kubernetes.io/zone), capacity (sim.k8sdr.io/cpu, memory, "
        "max-pods); replaces the nodes of k8sdr_sim_options",
        kind="path",
        session_wide=True,
    ),
    Option(
        "lb",
        "external load balancer: auto (a managed local nginx on sim, none elsewhere), "
        "managed, nginx, haproxy or none",
        kind="choice",
        default="auto",
        choices=("auto", "managed", "nginx", "haproxy", "none"),
        session_wide=True,
    ),
    Option("lb_config", "nginx: the config file holding the upstream", kind="path"),
    Option("lb_upstream", "nginx upstream / HAProxy backend that lists the nodes"),
    Option("lb_url", "URL the traffic probe sends requests to (through the load balancer)"),
    Option("lb_container", "nginx: run its commands inside this container (docker exec)"),
    Option("lb_socket", "HAProxy: the runtime API socket (admin level)", kind="path"),
    Option(
        "journal",
        "journal file: every disruption is recorded there before it is made, for "
        "`k8sdr recover` (default: .k8sdr/journal.jsonl)",
        kind="path",
        default=".k8sdr/journal.jsonl",
        session_wide=True,
    ),
    Option(
        "protected_nodes",
        "label selector of nodes never disrupted, besides the control plane "
        "(e.g. 'tier=db' or 'k8sdr.io/protected')",
        session_wide=True,
    ),
    Option(
        "max_disrupted",
        "the most nodes disrupted at once (default: no limit)",
        kind="int",
        session_wide=True,
    ),
    Option(
        "require_healthy",
        "refuse to start disruptive tests when nodes or workloads are not Ready: on or off",
        kind="choice",
        default="on",
        choices=ON_OFF,
        session_wide=True,
    ),
    Option(
        "lock",
        "hold the game-day lock (a Lease) for the disruptive session: on or off",
        kind="choice",
        default="on",
        choices=ON_OFF,
        session_wide=True,
    ),
    Option(
        "lock_holder",
        "who holds the game-day lock, shown to a refused run (default: user@host pid N)",
        session_wide=True,
    ),
    Option(
        "lock_namespace",
        "namespace of the game-day lock's Lease",
        default="default",
        session_wide=True,
    ),
    Option(
        "lock_duration",
        "seconds after which a lock that is no longer renewed expires",
        kind="int",
        default="60",
        session_wide=True,
    ),
    Option(
        "prometheus",
        "Prometheus for the steady state and assert_promql: auto (a managed local Prometheus "
        "on sim, none elsewhere), managed, none, or its URL; credentials from "
        "K8SDR_PROMETHEUS_TOKEN or K8SDR_PROMETHEUS_USERNAME/_PASSWORD",
        default="auto",
        session_wide=True,
    ),
    Option(
        "steady_state",
        "the steady-state hypothesis: one 'name: PromQL < number' (or <=, >, >=) per line, "
        "checked before the first disruption, during the experiment and after it",
        kind="lines",
        default="",
    ),
    Option(
        "steady_state_interval",
        "how often the steady state is checked while an experiment disrupts",
        kind="duration",
        default="1s",
    ),
    Option(
        "steady_state_recovery",
        "how long the system has, after the experiment, to meet its steady state again",
        kind="duration",
        default="60s",
    ),
)

OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved, validated settings, with where each value came from."""

    backend: str = "sim"
    kubeconfig: Path | None = None
    context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    kind_cluster: str | None = None
    namespace: str | None = None
    profile: str = "fast"
    report_dir: Path | None = None
    recorder: str = "on"
    #: (phase, seconds) pairs, parsed and checked when the settings are resolved.
    slos: tuple[tuple[str, float], ...] = ()
    machines: Path | None = None
    sim_config: Path | None = None
    lb: str = "auto"
    lb_config: Path | None = None
    lb_upstream: str | None = None
    lb_url: str | None = None
    lb_container: str | None = None
    lb_socket: Path | None = None
    journal: Path | None = None
    protected_nodes: str | None = None
    max_disrupted: int | None = None
    require_healthy: str = "on"
    lock: str = "on"
    lock_holder: str | None = None
    lock_namespace: str | None = "default"
    lock_duration: int | None = 60
    prometheus: str = "auto"
    steady_state: tuple[SteadyStateProbe, ...] = ()
    steady_state_interval: float = 1.0
    steady_state_recovery: float = 60.0
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        """One line per setting and its source, for the session header."""
        parts = []
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.name == "slos":
                value = ",".join(f"{phase}={seconds:g}s" for phase, seconds in value)
            elif option.kind == "lines":
                value = "; ".join(p.describe() for p in value)
            elif isinstance(value, tuple):
                value = ",".join(value)
            parts.append(f"{option.name}={value if value not in (None, '') else '-'}")
        return " ".join(parts)


def _convert(option: Option, raw: object, source: Source) -> object:
    """Validate one raw value; ConfigError names the option, the source and what is accepted."""
    where = {
        "ini": f"ini {option.ini_key}",
        "env": f"environment {option.env_var}",
        "cli": option.cli_flag,
        "marker": f"marker k8sdr({option.name}=...)",
        "default": "default",
    }[source]
    if option.kind == "lines":
        if isinstance(raw, str):
            lines = raw.splitlines()
        elif isinstance(raw, list | tuple):
            lines = [str(line) for line in raw]
        else:
            raise ConfigError(f"{where}: expected lines (or a list of strings), got {raw!r}")
        kept = tuple(line.strip() for line in lines if line.strip())
        return parse_steady_state(kept, where) if option.name == "steady_state" else kept
    if option.kind == "list":
        items: list[str]
        if isinstance(raw, str):
            items = [p.strip() for p in raw.split(",")]
        elif isinstance(raw, list | tuple):
            items = [str(p).strip() for p in raw]
        else:
            raise ConfigError(f"{where}: expected a comma-separated list, got {raw!r}")
        listed = tuple(p for p in items if p)
        return _slo_table(listed, where) if option.name == "slos" else listed
    if option.kind in ("int", "duration") and isinstance(raw, int | float):
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a number, got {raw!r}")
        raw = str(raw)
    if not isinstance(raw, str | Path):
        raise ConfigError(f"{where}: expected a string, got {type(raw).__name__} {raw!r}")
    text = str(raw).strip()
    if option.kind == "choice":
        if text not in option.choices:
            accepted = ", ".join(option.choices)
            raise ConfigError(
                f"invalid value {text!r} for {option.name} ({where}); accepted values: {accepted}"
            )
        return text
    if not text:
        return None
    if option.kind == "path":
        return Path(text).expanduser()
    if option.kind == "duration":
        try:
            return parse_duration(text)
        except ConfigError as exc:
            raise ConfigError(
                f"invalid value {text!r} for {option.name} ({where}): {exc}"
            ) from None
    if option.kind == "int":
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(
                f"invalid value {text!r} for {option.name} ({where}); expected a positive integer"
            )
        return int(text)
    return text


def _slo_table(items: tuple[str, ...], where: str) -> tuple[tuple[str, float], ...]:
    """`phase=duration` items as (phase, seconds); ConfigError naming the bad item."""
    table: list[tuple[str, float]] = []
    for item in items:
        phase, equals, duration = item.partition("=")
        if not equals or not phase.strip():
            raise ConfigError(
                f"invalid value {item!r} for slos ({where}); expected phase=duration, "
                "e.g. 'fail=60s,self-heal=5m'"
            )
        try:
            seconds = parse_duration(duration.strip())
        except ConfigError as exc:
            raise ConfigError(f"invalid value {item!r} for slos ({where}): {exc}") from None
        table.append((phase.strip(), seconds))
    return tuple(table)


def resolve(
    *,
    ini: Callable[[str], object] | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    marker: Mapping[str, Any] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Resolve settings from the four sources, later sources winning.

    With `base`, start from already resolved session settings and apply only `marker`.
    Raises ConfigError for an unknown marker keyword or an invalid value.
    """
    marker = dict(marker or {})
    unknown = sorted(set(marker) - set(OPTIONS_BY_NAME))
    if unknown:
        accepted = ", ".join(o.name for o in OPTIONS)
        raise ConfigError(
            f"unknown k8sdr marker keyword(s) {', '.join(unknown)}; accepted: {accepted}"
        )
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    for option in OPTIONS:
        if base is not None:
            value: object = getattr(base, option.name)
            source: Source = base.sources.get(option.name, "default")
        else:
            value = None
            if option.default is not None:
                value = _convert(option, option.default, "default")
            source = "default"
            layers: list[tuple[Source, object]] = [
                ("ini", ini(option.ini_key) if ini else None),
                ("env", (env or {}).get(option.env_var)),
                ("cli", (cli or {}).get(option.name)),
            ]
            for layer, raw in layers:
                if raw is None or raw == "" or raw == []:
                    continue
                value = _convert(option, raw, layer)
                source = layer
        if option.name in marker:
            wanted = _convert(option, marker[option.name], "marker")
            if option.name == "allowed_contexts":
                # A test may narrow the operator's allowlist, never widen it.
                operator_allowed = value if isinstance(value, tuple) else ()
                asked = wanted if isinstance(wanted, tuple) else ()
                wanted = tuple(c for c in asked if c in operator_allowed)
            value = wanted
            source = "marker"
        values[option.name] = value
        sources[option.name] = source
    return Settings(**values, sources=sources)  # type: ignore[arg-type]


def _named(name: str) -> str:
    option = OPTIONS_BY_NAME[name]
    return f"{option.name} ({option.cli_flag} / {option.env_var} / ini {option.ini_key})"


def validate(settings: Settings) -> None:
    """Check what can be checked without touching anything: formats, files, combinations.

    Raises ConfigError naming the option. Called for the session's settings at start and for
    each test's (its marker applied) at collection, so a bad value stops the run at once.
    """
    if settings.namespace is not None and not _DNS_LABEL.match(settings.namespace):
        raise ConfigError(
            f"invalid value {settings.namespace!r} for {_named('namespace')}: a namespace "
            "name is lower-case letters, digits and '-', at most 63 characters"
        )
    if settings.lock_namespace is not None and not _DNS_LABEL.match(settings.lock_namespace):
        raise ConfigError(
            f"invalid value {settings.lock_namespace!r} for {_named('lock_namespace')}: a "
            "namespace name is lower-case letters, digits and '-', at most 63 characters"
        )
    # kind names node containers and the kubeconfig context after the cluster: a DNS-style name.
    if settings.kind_cluster is not None and not re.match(
        r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", settings.kind_cluster
    ):
        raise ConfigError(
            f"invalid value {settings.kind_cluster!r} for {_named('kind_cluster')}: a kind "
            "cluster name is lower-case letters, digits, '.' and '-'"
        )
    # Docker's rule for container names (daemon/names: [a-zA-Z0-9][a-zA-Z0-9_.-]+).
    if settings.lb_container is not None and not re.match(
        r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$", settings.lb_container
    ):
        raise ConfigError(
            f"invalid value {settings.lb_container!r} for {_named('lb_container')}: not a "
            "Docker container name or id"
        )
    if settings.protected_nodes is not None:
        for term in _split_selector(settings.protected_nodes):
            if not _SELECTOR_TERM.match(term):
                raise ConfigError(
                    f"invalid value {settings.protected_nodes!r} for "
                    f"{_named('protected_nodes')}: {term.strip()!r} is not a label selector "
                    "term (k, !k, k=v, k!=v, k in (a,b), k notin (a,b))"
                )
    for name in ("report_dir", "journal"):
        path = getattr(settings, name)
        if path is None:
            continue
        if name == "report_dir" and path.exists() and not path.is_dir():
            raise ConfigError(f"{_named(name)}: {path} exists and is not a directory")
        if name == "journal" and path.is_dir():
            raise ConfigError(f"{_named(name)}: {path} is a directory, not a journal file")
        parent = path if name == "report_dir" else path.parent
        existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ConfigError(f"{_named(name)}: {existing} is not a directory")
    if settings.machines is not None and not settings.machines.is_file():
        raise ConfigError(f"{_named('machines')}: no such file {settings.machines}")
    if settings.sim_config is not None:
        from pytest_k8sdr.sim.kindconfig import KindConfigError, load_kind_config

        try:
            load_kind_config(settings.sim_config)
        except KindConfigError as exc:
            raise ConfigError(f"{_named('sim_config')}: {exc}") from exc
    if settings.lb_url is not None and not re.match(r"^https?://[^/\s]+", settings.lb_url):
        raise ConfigError(
            f"invalid value {settings.lb_url!r} for {_named('lb_url')}: expected an http:// "
            "or https:// URL"
        )
    _validate_lb(settings)
    if settings.prometheus not in ("auto", "managed", "none") and not re.match(
        r"^https?://[^/\s]+(/\S*)?$", settings.prometheus
    ):
        raise ConfigError(
            f"invalid value {settings.prometheus!r} for {_named('prometheus')}: expected auto, "
            "managed, none or an http:// or https:// URL"
        )
    if settings.steady_state and settings.prometheus == "none":
        raise ConfigError(
            f"{_named('steady_state')} is set but {_named('prometheus')} is none: the "
            "hypothesis needs a Prometheus to query"
        )


def _split_selector(selector: str) -> list[str]:
    """A label selector's terms: commas split, except inside `in (a,b)`'s parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [*terms, current]


def _validate_lb(settings: Settings) -> None:
    """An external load balancer needs what it is reached through."""
    kind = settings.lb
    if kind not in ("nginx", "haproxy"):
        return
    flag = OPTIONS_BY_NAME["lb"].cli_flag
    if not settings.lb_url:
        raise ConfigError(f"{flag}={kind} needs {_named('lb_url')} (where traffic goes in)")
    if not settings.lb_upstream:
        raise ConfigError(f"{flag}={kind} needs {_named('lb_upstream')} (the upstream/backend)")
    if kind == "nginx":
        if settings.lb_config is None:
            raise ConfigError(f"{flag}=nginx needs {_named('lb_config')} (the nginx config file)")
        # In a container the path is the container's; only a local file can be checked here.
        if settings.lb_container is None and not settings.lb_config.is_file():
            raise ConfigError(f"{_named('lb_config')}: no such file {settings.lb_config}")
    else:
        if settings.lb_socket is None:
            raise ConfigError(f"{flag}=haproxy needs {_named('lb_socket')} (the runtime API)")
        if not settings.lb_socket.exists():
            raise ConfigError(
                f"{_named('lb_socket')}: no such socket {settings.lb_socket} (is HAProxy's "
                "runtime API, or the ssh -L forwarding it, up?)"
            )


def session_mismatch(session: Settings, test: Settings) -> str | None:
    """Why a test's marker cannot run in this session (a session-wide option differs), or None."""
    for option in OPTIONS:
        if option.session_wide and test.sources.get(option.name) == "marker":
            wanted, have = getattr(test, option.name), getattr(session, option.name)
            if wanted != have:
                return f"needs {option.name}={wanted}; this session runs {option.name}={have}"
    return None


def kubeconfig_paths(settings: Settings, environ: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files in force: the setting, else $KUBECONFIG, else ~/.kube/config."""
    if settings.kubeconfig is not None:
        return [settings.kubeconfig]
    listed = environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(":") if p]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(paths: list[Path]) -> tuple[dict[str, Any], str | None]:
    """Contexts by name and the current-context, merged as kubectl merges (first file wins).

    Raises ConfigError naming the file for a missing, unreadable or malformed kubeconfig.
    """
    import yaml

    contexts: dict[str, Any] = {}
    current: str | None = None
    existing = [p for p in paths if p.exists()]
    if not existing:
        raise ConfigError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
    for path in existing:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {path} cannot be read: {exc}") from exc
        if doc is None:
            doc = {}
        if not isinstance(doc, dict) or not isinstance(doc.get("contexts") or [], list):
            raise ConfigError(
                f"kubeconfig {path} is malformed: expected a mapping with a 'contexts' list"
            )
        for entry in doc.get("contexts") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(f"kubeconfig {path} is malformed: a context without a name")
            contexts.setdefault(entry["name"], entry.get("context") or {})
        if current is None and isinstance(doc.get("current-context"), str):
            current = doc["current-context"] or None
    return contexts, current


def target_context(settings: Settings, environ: Mapping[str, str]) -> str:
    """The kubeconfig context the session will use; ConfigError if it does not exist."""
    contexts, current = load_kubeconfig(kubeconfig_paths(settings, environ))
    name = settings.context or current
    if not name:
        raise ConfigError(
            "the kubeconfig has no current-context; choose one with --k8sdr-context "
            f"(available: {', '.join(sorted(contexts)) or 'none'})"
        )
    if name not in contexts:
        raise ConfigError(
            f"kubeconfig context {name!r} does not exist "
            f"(available: {', '.join(sorted(contexts)) or 'none'})"
        )
    return name


def refuse_unless_allowed(context: str, allowed: tuple[str, ...], tests: list[str]) -> None:
    """Refuse disruptive tests on a context that is not on the allowlist, saying how to allow it."""
    if context in allowed:
        return
    shown = ", ".join(tests[:5]) + (f" and {len(tests) - 5} more" if len(tests) > 5 else "")
    option = OPTIONS_BY_NAME["allowed_contexts"]
    raise ConfigError(
        f"refusing to run {len(tests)} disruptive test(s) ({shown}) against kubeconfig context "
        f"{context!r}: it is not on the allowlist "
        f"({', '.join(allowed) if allowed else 'the allowlist is empty'}). "
        f"If this cluster may be disrupted, allow it with {option.cli_flag}={context} "
        f"(or {option.env_var}, or ini {option.ini_key})."
    )
