/** A monotonic clock in milliseconds; tests pass a fake one. */
export type Clock = () => number;
export const monotonicClock: Clock = () => performance.now();
