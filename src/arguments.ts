/**
 * Argument checks for the public methods that take an account and a
 * function (withProxy, bind, rotate, current, verifyEgress). A wrong argument
 * is a programming error: it is reported first, before the installation
 * check and the account lookup, as an InvalidArgumentError naming the method
 * and the argument. Only the kind of a wrong value is printed, never the
 * value.
 */
import { InvalidArgumentError } from './errors.js';
import { typeName } from './proxy/endpoint.js';

/** `account` of `method`: a non-empty string, or (when `optional`) undefined. */
export function checkAccount(method: string, account: unknown, optional: boolean): void {
  if (account === undefined && optional) return;
  if (typeof account === 'string' && account !== '') return;
  const got = account === '' ? 'an empty string' : typeName(account);
  throw new InvalidArgumentError(`${method}: account must be a non-empty string${optional ? ' (or omitted)' : ''}, got ${got}`);
}

export function checkFunction(method: string, fn: unknown, account: string): void {
  if (typeof fn === 'function') return;
  throw new InvalidArgumentError(`${method}: fn must be a function, got ${typeName(fn)}`, { account });
}

export function checkOptionsArgument(method: string, options: unknown): void {
  if (options === undefined || (options !== null && typeof options === 'object' && !Array.isArray(options))) return;
  throw new InvalidArgumentError(`${method}: options must be an object, got ${typeName(options)}`);
}
