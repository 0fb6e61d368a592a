// fengari ships no types; the few calls the Argo CD health test makes are declared loosely here.
declare module 'fengari' {
  /* eslint-disable @typescript-eslint/no-explicit-any */
  export const lua: any;
  export const lauxlib: any;
  export const lualib: any;
  export function to_luastring(s: string): Uint8Array;
}
