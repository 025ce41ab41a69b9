"""Drives one simulated BMC through a full cycle with OpenStack's sushy (Ironic's Redfish client)."""
import sys
import time

import sushy
from sushy import auth

url, user, password, system_path = sys.argv[1:5]


def wait_power(system, wanted, deadline_s=10):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        system.refresh()
        if system.power_state == wanted:
            return
        time.sleep(0.05)
    raise SystemExit(f"power state stayed {system.power_state}, wanted {wanted}")


# Session auth: sushy logs in through SessionService and sends X-Auth-Token.
conn = sushy.Sushy(url + "/redfish/v1", auth=auth.SessionAuth(user, password), verify=False)
system = conn.get_system(system_path)
assert system.uuid, "system has a UUID"
assert system.power_state == sushy.POWER_STATE_OFF, system.power_state
assert sushy.RESET_ON in system.get_allowed_reset_system_values()
system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
system.refresh()
assert system.boot.target == sushy.BOOT_SOURCE_TARGET_PXE, system.boot.target
assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_ONCE, system.boot.enabled
system.reset_system(sushy.RESET_ON)
wait_power(system, sushy.POWER_STATE_ON)
system.reset_system(sushy.RESET_FORCE_OFF)
wait_power(system, sushy.POWER_STATE_OFF)
manager = conn.get_manager_collection().get_members()[0]
assert manager.firmware_version
sessions = conn.get_session_service().sessions.get_members()
assert len(sessions) >= 1, "our own session is listed"
# Basic auth works as well.
basic = sushy.Sushy(url + "/redfish/v1", auth=auth.BasicAuth(user, password), verify=False)
assert basic.get_system(system_path).power_state == sushy.POWER_STATE_OFF
print("sushy cycle ok")
