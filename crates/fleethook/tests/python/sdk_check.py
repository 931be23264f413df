"""Drives a fleethook server with Smartcar's own Python SDK, unchanged.

Reads a JSON object on stdin (tokens, ids, and a delivery captured by the Rust test), makes
the SDK calls, and prints one JSON object with what the SDK returned. The Rust test asserts on
it; this script only asserts what needs the SDK's own types.
"""
import json
import sys

import smartcar  # the origin comes from SMARTCAR_API_ORIGIN, set by the test

cfg = json.load(sys.stdin)
out = {}

vehicles = smartcar.get_vehicles(cfg["accessToken"])
out["vehicles"] = vehicles.vehicles
out["paging"] = {"count": vehicles.paging.count, "offset": vehicles.paging.offset}

vehicle = smartcar.Vehicle(cfg["vehicleId"], cfg["accessToken"])
battery = vehicle.battery()
out["battery"] = {"percentRemaining": battery.percent_remaining, "range": battery.range,
                  "unitSystem": battery.meta.unit_system, "dataAge": battery.meta.data_age,
                  "requestId": battery.meta.request_id}
location = vehicle.location()
out["location"] = {"latitude": location.latitude, "longitude": location.longitude}
attributes = vehicle.attributes()
out["attributes"] = {"id": attributes.id, "make": attributes.make, "model": attributes.model,
                     "year": attributes.year}
imperial = smartcar.Vehicle(cfg["vehicleId"], cfg["accessToken"], {"unit_system": "imperial"})
out["batteryImperial"] = {"range": imperial.battery().range}

subscribed = vehicle.subscribe(cfg["webhookId"])
out["subscribe"] = {"webhookId": subscribed.webhook_id, "vehicleId": subscribed.vehicle_id}
unsubscribed = vehicle.unsubscribe(cfg["amt"], cfg["webhookId"])
out["unsubscribe"] = {"status": unsubscribed.status}

try:
    smartcar.Vehicle("no-such-vehicle", cfg["accessToken"]).battery()
    out["missing"] = None
except smartcar.SmartcarException as e:
    out["missing"] = {"statusCode": e.status_code, "type": e.type}

out["hashChallenge"] = smartcar.hash_challenge(cfg["amt"], cfg["challenge"])
out["verifyPayload"] = smartcar.verify_payload(cfg["amt"], cfg["signature"], cfg["body"])
out["verifyTampered"] = smartcar.verify_payload(cfg["amt"], cfg["signature"], cfg["body"] + " ")
print(json.dumps(out))
