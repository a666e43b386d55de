"""A cohort's /24 is free on the machine, not only in this engine: a network another
engine left behind (a stopped dockerd keeps its bridges), a VPN or the LAN is not
taken again (a second bridge with the same subnet made the VMs unreachable)."""

from __future__ import annotations

import ipaddress

from workshop.labcloud import network

# /proc/net/route as the kernel writes it (hex, host byte order): the default route, and
# two bridges another engine left on 10.213.0.0/24 and 10.213.1.0/24.
ROUTES = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100A8C0	0003	0	0	0	00000000	0	0	0
br-old1	0000D50A	00000000	0001	0	0	0	00FFFFFF	0	0	0
br-old2	0001D50A	00000000	0001	0	0	0	00FFFFFF	0	0	0
"""


def test_the_hosts_routes_are_read_without_the_default(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert network.routed_networks(table) == [
        ipaddress.IPv4Network("10.213.0.0/24"),
        ipaddress.IPv4Network("10.213.1.0/24"),
    ]


def test_a_subnet_the_host_already_routes_is_not_free(engine, tmp_path, monkeypatch):
    table = tmp_path / "route"
    table.write_text(ROUTES)
    monkeypatch.setattr(network, "ROUTES", table)
    chosen = network._free_subnet(engine)
    for routed in network.routed_networks(table):
        assert not chosen.overlaps(routed), chosen
