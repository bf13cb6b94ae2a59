/**
 * The CLI's integer flag parsers (src/cli/common.ts intParser): a value that is not an integer in
 * the flag's range, a word or a number out of range alike, gets the flag's own one-line message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { intParser, parseNonNegativeInt, parsePort, parsePositiveInt } from '../../src/cli/common.ts';

function message(parse: (v: string) => number, value: string): string {
  try {
    parse(value);
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, `${value}: commander's argument error, not ${String(err)}`);
    return err.message;
  }
  assert.fail(`${value} was accepted`);
}

test('each parser names what it takes, whatever the bad value', () => {
  for (const bad of ['abc', '-1', '2.5', '', '1e3', '9007199254740993']) {
    assert.equal(message(parseNonNegativeInt, bad), 'must be a non-negative integer.', bad);
    assert.equal(message(parsePositiveInt, bad), 'must be a positive integer.', bad);
    assert.equal(message(parsePort, bad), 'must be a port number from 1 to 65535.', bad);
  }
  assert.equal(message(parsePositiveInt, '0'), 'must be a positive integer.');
  assert.equal(message(parsePort, '0'), 'must be a port number from 1 to 65535.');
  assert.equal(message(parsePort, '65536'), 'must be a port number from 1 to 65535.');
  assert.equal(message(intParser(10, 20, 'from 10 to 20'), '21'), 'from 10 to 20');
});

test('values in range come back as numbers', () => {
  assert.equal(parseNonNegativeInt('0'), 0);
  assert.equal(parsePositiveInt('9007199254740991'), Number.MAX_SAFE_INTEGER);
  assert.equal(parsePort('1'), 1);
  assert.equal(parsePort('65535'), 65535);
  assert.equal(intParser(10, 20, 'x')('10'), 10);
});
