// Fails `tsc --noEmit` when src/clarion.js no longer matches the declared API.
import * as api from "./clarion.js";
import * as implementation from "../src/clarion.js";

export const declared: typeof api = implementation;
