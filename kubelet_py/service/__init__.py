"""Running kubelet-py as a systemd service: the config file hook of `serve` (daemon.py), logfmt
logs (logfmt.py), sd_notify (notify.py), the unit file (unit.py), and the commands
install-service, uninstall-service, drain and doctor (commands.py)."""
