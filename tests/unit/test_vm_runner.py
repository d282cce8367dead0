"""The VM runner's pure parts: finding the kernel and building the vng command."""

import pytest

from tests import vm


def test_missing_kernel_is_named(monkeypatch):
    monkeypatch.setenv("KPY_VM_KERNEL", "/nonexistent/vmlinuz")
    with pytest.raises(vm.VMError, match="/nonexistent/vmlinuz: no such file"):
        vm.find_kernel()


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)
    monkeypatch.setattr(vm.os, "access", lambda *a: False)
    with pytest.raises(vm.VMError, match="install qemu-system-x86"):
        vm.find_tool("qemu-system-x86_64", "qemu-system-x86")


def test_vng_command(monkeypatch):
    monkeypatch.setattr(vm, "find_tool", lambda name, pkg: f"/bin/{name}")
    spec = vm.VMSpec(memory="1G", cpus=1, qemu_opts=["-netdev socket,id=l0,listen=127.0.0.1:9"], rwdirs=["/r"])
    cmd = vm.vng_command(spec, "/boot/vmlinuz-x", "true")
    assert cmd[:3] == ["/bin/vng", "--run", "/boot/vmlinuz-x"]
    assert "--disable-kvm" in cmd and "--force-9p" in cmd
    assert cmd[cmd.index("--memory") + 1] == "1G" and cmd[cmd.index("--rwdir") + 1] == "/r"
    assert "--qemu-opts=-netdev socket,id=l0,listen=127.0.0.1:9" in cmd
    assert cmd[-2:] == ["--exec", "true"]


def test_version_order():
    assert vm._version_key("6.1.0-57-amd64") > vm._version_key("6.1.0-9-amd64")
