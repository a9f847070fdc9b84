// Buffer methods Bun (like Node) implements but @types/node does not declare.
// latin1Slice skips toString()'s encoding dispatch on the PUBLISH hot path.
declare global {
  interface Buffer {
    latin1Slice(start?: number, end?: number): string;
  }
}
export {};
