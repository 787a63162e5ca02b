/**
 * Web-platform globals that Node has at run time but @types/node does not declare, limited to what
 * gateway/shared uses. The Node program (tsconfig.json) takes these instead of the whole DOM
 * library, so a daemon module cannot type-check against `document` or `window`; the browser and
 * the shared folder's own check get them from lib "DOM" / "WebWorker".
 */
type CryptoKey = import('node:crypto').webcrypto.CryptoKey;
type BufferSource = ArrayBufferView | ArrayBuffer;

declare namespace WebAssembly {
  // biome-ignore lint/suspicious/noEmptyInterface: an opaque handle, as in lib.dom
  interface Module {}
  interface Instance {
    readonly exports: Record<string, unknown>;
  }
  interface Memory {
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
  type Imports = Record<string, Record<string, unknown>>;
  function compile(bytes: BufferSource): Promise<Module>;
  function validate(bytes: BufferSource): boolean;
  function instantiate(module: Module, imports?: Imports): Promise<Instance>;
}
