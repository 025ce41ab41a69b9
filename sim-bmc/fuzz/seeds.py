#!/usr/bin/env python3
"""Writes the seed corpus of the redfish_request target: real Redfish requests as clients (the
operator, sushy, python-redfish, DMTF's validators) send them, per vendor flavour, plus hostile
variants. Rerun after changing it; the files are committed."""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "redfish_request")
VENDORS = {"dell": ("System.Embedded.1", "iDRAC.Embedded.1"), "hpe": ("1", "1"),
           "lenovo": ("1", "1"), "supermicro": ("1", "1"), "ami": ("Self", "Self")}
ORDER = ["dell", "hpe", "lenovo", "supermicro", "ami"]
JSON = "Content-Type: application/json\n"


def control(vendor, body_error=False, chunk_log2=12):
    return bytes([ORDER.index(vendor) | (0x08 if body_error else 0) | (chunk_log2 << 4)])


def req(method, path, headers="", body=""):
    text = f"{method} {path}\n{headers}"
    if body:
        text += "\n" + body
    return text


def write(name, vendor, requests, **kw):
    data = control(vendor, **kw) + "\n%%\n".join(requests).encode()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


for v in ORDER:
    sys_id, mgr_id = VENDORS[v]
    system = f"/redfish/v1/Systems/{sys_id}"
    manager = f"/redfish/v1/Managers/{mgr_id}"
    write(f"{v}-discovery", v, [req("GET", "/redfish"), req("GET", "/redfish/v1/"),
          req("GET", "/redfish/v1/Systems"), req("GET", system),
          req("GET", f"{system}/Processors"), req("GET", f"{system}/Memory"),
          req("GET", f"{system}/EthernetInterfaces"), req("GET", f"{system}/Storage"),
          req("GET", "/redfish/v1/Chassis"), req("GET", "/redfish/v1/Managers"), req("GET", manager)])
    write(f"{v}-boot-override", v, [req("PATCH", system, JSON,
          '{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}'),
          req("POST", f"{system}/Actions/ComputerSystem.Reset", JSON, '{"ResetType":"On"}'),
          req("GET", system)])
    write(f"{v}-reset-types", v, [req("GET", f"{system}/ResetActionInfo"),
          req("POST", f"{system}/Actions/ComputerSystem.Reset", JSON, '{"ResetType":"ForceOff"}'),
          req("POST", f"{system}/Actions/ComputerSystem.Reset", JSON, '{"ResetType":"GracefulShutdown"}'),
          req("POST", f"{system}/Actions/ComputerSystem.Reset", JSON, '{"ResetType":5}')])
    write(f"{v}-bios", v, [req("GET", f"{system}/Bios"), req("GET", f"{system}/Bios/Settings"),
          req("PATCH", f"{system}/Bios/Settings", JSON, '{"Attributes":{"BootMode":"Uefi"}}')])
    write(f"{v}-manager-reset", v, [req("POST", f"{manager}/Actions/Manager.Reset", JSON,
          '{"ResetType":"GracefulRestart"}'), req("GET", "/redfish/v1/Systems")])
    write(f"{v}-etag", v, [req("GET", system), req("PATCH", system, JSON + 'If-Match: W/"0000000000000000"\n',
          '{"AssetTag":"rack-1"}'), req("GET", system, 'If-None-Match: W/"0000000000000000"\n')])

write("session-login", "dell", [req("POST", "/redfish/v1/SessionService/Sessions", JSON,
      '{"UserName":"admin","Password":"password"}'), req("GET", "/redfish/v1/SessionService/Sessions"),
      req("GET", "/redfish/v1/SessionService")])
write("session-bad-token", "hpe", [req("GET", "/redfish/v1/Systems", "X-Auth-Token: nope\n")])
write("accounts", "lenovo", [req("GET", "/redfish/v1/AccountService/Accounts"),
      req("POST", "/redfish/v1/AccountService/Accounts", JSON,
          '{"UserName":"op","Password":"secret123","RoleId":"Operator","Enabled":true}'),
      req("PATCH", "/redfish/v1/AccountService/Accounts/2", JSON, '{"Password":"newpass"}'),
      req("DELETE", "/redfish/v1/AccountService/Accounts/3")])
write("readonly-user", "supermicro", [req("PATCH", "/redfish/v1/Systems/1", JSON + "Authorization: Basic dmlld2VyOnY=\n",
      '{"AssetTag":"x"}')])
write("subscriptions", "dell", [req("POST", "/redfish/v1/EventService/Subscriptions", JSON,
      '{"Destination":"https://listener.example/events","Protocol":"Redfish","Context":"c"}'),
      req("GET", "/redfish/v1/EventService/Subscriptions/1"),
      req("PATCH", "/redfish/v1/EventService/Subscriptions/1", JSON, '{"Context":"d"}'),
      req("POST", "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent", JSON, '{}'),
      req("DELETE", "/redfish/v1/EventService/Subscriptions/1")])
write("update-service", "hpe", [req("GET", "/redfish/v1/UpdateService"),
      req("POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", JSON,
          '{"ImageURI":"http://fw.example/bios-2.1.bin"}'), req("GET", "/redfish/v1/TaskService/Tasks")])
write("metadata-odata", "ami", [req("GET", "/redfish/v1/$metadata"), req("GET", "/redfish/v1/odata"),
      req("HEAD", "/redfish/v1/Systems/Self"), req("OPTIONS", "/redfish/v1/")])
write("query-and-headers", "dell", [req("GET", "/redfish/v1/Systems?$expand=.", "OData-Version: 4.0\n"),
      req("GET", "/redfish/v1/", "OData-Version: 3.0\n"),
      req("POST", "/redfish/v1/SessionService/Sessions", "Content-Type: text/plain\n", "x")])
# Hostile bodies: malformed, wrong types, unknown properties, deep nesting, invalid UTF-8, truncation.
write("malformed-json", "dell", [req("PATCH", "/redfish/v1/Systems/System.Embedded.1", JSON, '{"Boot":')])
write("wrong-types", "hpe", [req("PATCH", "/redfish/v1/Systems/1", JSON,
      '{"Boot":{"BootSourceOverrideTarget":7,"BootSourceOverrideEnabled":[]},"AssetTag":{}}')])
write("unknown-properties", "lenovo", [req("PATCH", "/redfish/v1/Systems/1", JSON, '{"Colour":"red","Boot":{"Speed":1}}')])
write("not-in-list", "supermicro", [req("PATCH", "/redfish/v1/Systems/1", JSON,
      '{"Boot":{"BootSourceOverrideTarget":"Floppy"}}')])
write("deep-nesting", "ami", [req("PATCH", "/redfish/v1/Systems/Self", JSON, "[" * 5000 + "]" * 5000)])
with open(os.path.join(OUT, "invalid-utf8"), "wb") as f:
    f.write(control("dell") + b"PATCH /redfish/v1/Systems/System.Embedded.1\n" + JSON.encode()
            + b"\n{\"AssetTag\":\"\xff\xfe\xc3\x28\"}")
write("truncated-body", "hpe", [req("PATCH", "/redfish/v1/Systems/1", JSON, '{"AssetTag":"a"}')],
      body_error=True, chunk_log2=2)
write("many-headers", "lenovo", [req("GET", "/redfish/v1/", "".join(f"X-H{i}: {i}\n" for i in range(80)))])
write("huge-header", "dell", [req("GET", "/redfish/v1/", "X-Big: " + "a" * 20000 + "\n")])
