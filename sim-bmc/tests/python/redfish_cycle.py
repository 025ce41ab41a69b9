"""Drives one simulated BMC through a full cycle with DMTF's python-redfish library."""
import sys
import time

import redfish

url, user, password, system_path = sys.argv[1:5]


def power(client):
    r = client.get(system_path)
    assert r.status == 200, r.status
    return r.dict["PowerState"]


def wait_power(client, wanted, deadline_s=10):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if power(client) == wanted:
            return
        time.sleep(0.05)
    raise SystemExit(f"power state stayed {power(client)}, wanted {wanted}")


for auth in ("session", "basic"):
    client = redfish.redfish_client(base_url=url, username=user, password=password, default_prefix="/redfish/v1")
    client.login(auth=auth)
    system = client.get(system_path).dict
    assert system["UUID"] and system["PowerState"] == "Off", system["PowerState"]
    r = client.patch(system_path, body={"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}})
    assert r.status in (200, 204), (r.status, r.text)
    target = system["Actions"]["#ComputerSystem.Reset"]["target"]
    r = client.post(target, body={"ResetType": "On"})
    assert r.status in (200, 202, 204), (r.status, r.text)
    wait_power(client, "On")
    r = client.post(target, body={"ResetType": "ForceOff"})
    assert r.status in (200, 202, 204), (r.status, r.text)
    wait_power(client, "Off")
    r = client.post(target, body={"ResetType": "Teleport"})
    assert r.status == 400, r.status
    assert "ActionParameterValueNotInList" in r.text, r.text
    client.logout()
print("redfish cycle ok")
