// The wire types both apps use, by name. They are generated at build time (`npm run wire`, part
// of `npm run build`) from `web/openapi.json` into `wire.gen.d.ts` (a declaration file: the operations table it also holds has two entries per door that takes GET and POST, which only a declaration may); a Rust test
// (crates/bulwark/tests/openapi_file.rs) fails when that file is not the server's document, so
// an app that reads a field the server no longer sends does not compile.
import type { components } from "./wire.gen";

type S = components["schemas"];
export type AccessLogEntry = S["AccessLogEntry"];
export type AlertActionDto = S["AlertActionDto"];
export type AlertDto = S["AlertDto"];
export type AlertMeasures = S["AlertMeasures"];
export type CaseDto = S["CaseDto"];
export type ConditionsDto = S["ConditionsDto"];
export type DeviceDto = S["DeviceDto"];
export type DeviceHealthDto = S["DeviceHealthDto"];
export type LoginResponse = S["LoginResponse"];
export type Me = S["Me"];
export type NoticeDto = S["NoticeDto"];
export type OrderDto = S["OrderDto"];
export type OwnFixStored = S["OwnFixStored"];
export type PersonDto = S["PersonDto"];
export type PetitionDto = S["PetitionDto"];
export type PetitionEventDto = S["PetitionEventDto"];
export type PositionDto = S["PositionDto"];
export type Settings = S["Settings"];
export type ShapeDto = S["ShapeDto"];
export type Snapshot = S["Snapshot"];
export type VapidPublicKey = S["VapidPublicKey"];
export type VictimAlertDto = S["VictimAlertDto"];
export type ZoneDto = S["ZoneDto"];
