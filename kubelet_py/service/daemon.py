"""What `serve` needs to run as a service: the config file as the flags' defaults, logfmt logs,
the service manager told READY/STATUS/STOPPING and pinged by the watchdog, and SIGHUP.

    @config_option                           on `serve`: --config PATH (env KUBELET_PY_CONFIG)
    hooks = ServiceHooks.begin(log_level)    logging set up, $NOTIFY_SOCKET taken
    hooks.serving(ctx, agent)                once the socket serves: READY=1, watchdog, SIGHUP
    hooks.stopping()                         STOPPING=1 (pods keep running)

The file's keys are serve's flags in camelCase (kubelet_py.config.file); its values become the
flags' defaults (click's default_map), so a flag on the command line (or its environment
variable) overrides the file. SIGHUP re-reads the file in a thread and applies, without a restart,
the keys in LIVE; a change of any other key is logged as needing a restart."""

from __future__ import annotations

import os

import click

# Every command imports this module (kubectl.py's serve carries config_option): the config file's
# loader and the rest are imported when used, not here.
LOGGER = "kubelet_py.service"
DEFAULT_CONFIG = "/etc/kubelet-py/config.yaml"  # kubelet_py.config.file.DEFAULT_PATH (a test holds them equal)
META = "kubelet_py.config"
# safe to change in a running daemon: they act on what happens next (a log line, the next
# crash-loop delay, the next admission), never on what runs
LIVE = ("log_level", "crashloop_max", "max_pods", "allowed_unsafe_sysctls")
STATUS_EVERY = 10.0  # seconds between looks at whether STATUS= changed


def _log():
    import logging
    return logging.getLogger(LOGGER)


def schema_of(command: click.Command) -> list:
    """The config file's keys (kubelet_py.config.file.KeySpec): one per option of `command` (but
    --config itself)."""
    from kubelet_py.config import file as cfgfile
    out = []
    for p in command.params:
        if not isinstance(p, click.Option) or p.name == "config" or not p.name:
            continue
        longs = [o for o in p.opts if o.startswith("--")] or p.opts
        t = p.type
        kw: dict = {}
        if p.is_flag or isinstance(t, click.types.BoolParamType):
            kind = cfgfile.BOOLEAN
        elif isinstance(t, click.Choice):
            kind, kw["choices"] = cfgfile.CHOICE, tuple(str(c) for c in t.choices)
        elif isinstance(t, (click.types.IntParamType, click.types.FloatParamType)):
            kind = cfgfile.INTEGER if isinstance(t, click.types.IntParamType) else cfgfile.NUMBER
            kw["min"], kw["max"] = getattr(t, "min", None), getattr(t, "max", None)
        else:
            kind = cfgfile.STRING
        out.append(cfgfile.KeySpec(cfgfile.key_name(longs[0]), p.name, kind, multiple=p.multiple,
                                   live=p.name in LIVE, path=isinstance(t, click.Path), **kw))
    return out


class ConfigState:
    def __init__(self, path: str, explicit: bool, values: dict):
        self.path = path  # the file read (or that would be read: the default path when absent)
        self.explicit = explicit  # named by --config / $KUBELET_PY_CONFIG (then it must exist)
        self.values = values  # param -> value, from the file


def read_config(path: str, explicit: bool, schema) -> dict:
    """The file's values ({} for an absent default file); ConfigFileError otherwise."""
    from kubelet_py.config import file as cfgfile
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(cfgfile.MAX_FILE_CHARS + 1)
    except FileNotFoundError:
        if not explicit:
            return {}
        raise cfgfile.ConfigFileError(path, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise cfgfile.ConfigFileError(path, [f"cannot read it: {getattr(e, 'strerror', None) or e}"]) from None
    return cfgfile.load_text(text, path, schema)


def _load(ctx: click.Context, param: click.Parameter, value: str | None):
    from kubelet_py.config import file as cfgfile
    if ctx.resilient_parsing:
        return value
    path, explicit = (value, True) if value else (DEFAULT_CONFIG, False)
    try:
        values = read_config(path, explicit, schema_of(ctx.command))
    except cfgfile.ConfigFileError as e:
        raise click.ClickException(str(e)) from None
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta[META] = ConfigState(path, explicit, values)
    return value


def config_option(f):
    return click.option("--config", envvar="KUBELET_PY_CONFIG", is_eager=True, expose_value=False, callback=_load,
                        type=click.Path(dir_okay=False),
                        help=f"Config file: serve's flags as camelCase keys [default: {DEFAULT_CONFIG}, "
                             "read when it exists]. Flags override it; SIGHUP re-reads it.")(f)


def flag_defaults(command: click.Command) -> dict:
    """Each option's default as the command sees it (None where it has none: click 8.3 says UNSET)."""
    unset = getattr(click.core, "UNSET", object())
    return {p.name: None if p.default is unset else p.default for p in command.params
            if isinstance(p, click.Option) and p.name != "config"}


def _flags_given(ctx: click.Context) -> dict:
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k) in given}


def sysctl_patterns(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in (value or "").split(",") if x.strip())


class ServiceHooks:
    def __init__(self, notifier):
        self.notifier = notifier
        self._tasks: list = []  # asyncio tasks: the watchdog, reloads

    @classmethod
    def begin(cls, log_level: str) -> "ServiceHooks":
        import signal
        from .logfmt import setup
        from .notify import Notifier
        setup(log_level)
        # a SIGHUP before the loop serves would kill the daemon (the default action): log it
        # instead. A handler, not SIG_IGN, which every process the daemon starts would inherit.
        signal.signal(signal.SIGHUP, lambda *_: _log().warning("SIGHUP before the daemon serves: ignored"))
        hooks = cls(Notifier.from_environ())
        hooks.notifier.send(STATUS="starting: reading the checkpoint, adopting the pods that run")
        return hooks

    def serving(self, ctx: click.Context, agent) -> None:
        """Call once the API socket serves, from the event loop."""
        import asyncio
        import signal
        self.ctx, self.agent = ctx, agent
        self.schema = schema_of(ctx.command)
        self.defaults = flag_defaults(ctx.command)
        self.current = dict(ctx.params)
        loop = asyncio.get_running_loop()
        self.notifier.send(READY=1, STATUS=self._status("serving"), MAINPID=os.getpid())
        if self.notifier.enabled:
            self._tasks.append(loop.create_task(self._keepalive(), name="service manager"))
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _status(self, what: str) -> str:
        a = self.agent
        return f"{what} on {a.opts.socket}, node {a.node_name}, {len(a.workers)} pods"

    async def _keepalive(self) -> None:
        """WATCHDOG=1 every half of WatchdogSec while the sync loop is alive (a stuck daemon is
        restarted), and STATUS= when the pod count changed (checked every STATUS_EVERY s)."""
        import asyncio
        interval = self.notifier.watchdog
        if interval:
            _log().info("systemd watchdog: a ping every %.1fs", interval)
        tick = min(interval or STATUS_EVERY, STATUS_EVERY)
        sent, status_at = self._status("serving"), 0.0
        while True:
            await asyncio.sleep(tick)
            if interval:
                why = self.agent.unhealthy()
                if why:
                    _log().error("no watchdog ping: %s", why)
                else:
                    self.notifier.send(WATCHDOG=1)
            status_at += tick
            if status_at >= STATUS_EVERY:
                status_at = 0.0
                if (now := self._status("serving")) != sent:
                    self.notifier.send(STATUS=now)
                    sent = now

    def _on_hup(self) -> None:
        import asyncio
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.get_running_loop().create_task(self.reload(), name="reload config"))

    async def reload(self) -> None:
        import asyncio
        from kubelet_py.config import file as cfgfile
        st: ConfigState = self.ctx.meta[META]
        self.notifier.send(RELOADING=1, STATUS=f"re-reading {st.path}")
        try:
            values = await asyncio.to_thread(read_config, st.path, st.explicit, self.schema)
        except cfgfile.ConfigFileError as e:
            _log().error("SIGHUP: config file not applied, the daemon runs on as it was: %s", e)
            self.notifier.send(READY=1, STATUS=self._status("serving (config file not applied: see the log)"))
            return
        new = cfgfile.effective(values, _flags_given(self.ctx))
        plan = cfgfile.plan_reload(self.current, {**self.defaults, **new}, self.schema, self.defaults)
        for param, value in plan.live.items():
            self.apply(param, value)
            self.current[param] = value
            _log().info("SIGHUP: %s is now %r", cfgfile.key_name(param), value)
        if plan.restart:
            _log().warning("SIGHUP: %s changed in %s: restart the daemon to apply it (systemctl restart "
                           "kubelet-py)", ", ".join(plan.restart), st.path)
        if not plan.live and not plan.restart:
            _log().info("SIGHUP: %s re-read, nothing changed", st.path)
        st.values = values
        self.notifier.send(READY=1, STATUS=self._status("serving"))

    def apply(self, param: str, value) -> None:
        """One LIVE setting into the running agent."""
        import dataclasses
        a = self.agent
        if param == "log_level":
            from .logfmt import set_level
            set_level(value)
        elif param == "crashloop_max":
            from kubelet_py.status.backoff import crashloop_policy
            a.backoff.policy = crashloop_policy(value)  # the workers share this table
        elif param == "max_pods":
            a.opts = dataclasses.replace(a.opts, max_pods=value)
        elif param == "allowed_unsafe_sysctls":
            a.opts = dataclasses.replace(a.opts, allowed_unsafe_sysctls=sysctl_patterns(value))

    def stopping(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.notifier.send(STOPPING=1, STATUS="stopping: pods and their supervisors keep running")
        self.notifier.close()
