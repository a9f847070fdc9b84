/**
 * The Store contract on `MemoryStore`. A "reopen" is a new MemoryStore over
 * the same `MemoryData`, as when a broker is restarted inside one process.
 */
import { MemoryData, MemoryStore } from "../../lib/store.ts";
import { storeContract } from "./store.contract.ts";

let data = new MemoryData();

storeContract(
  "MemoryStore",
  () => {
    data = new MemoryData();
    return new MemoryStore(data);
  },
  () => new MemoryStore(data),
);
