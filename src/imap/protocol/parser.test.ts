// IMAP command parser: framing — tags, strings and literals, pipelining, limits, line mode, chunking.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_CAPS, parser, events, eventsBytewise, commands, cmd, bad, set } from '../../../test/imap/parser-helpers.js';

describe('tags and command names', () => {
  it('accepts any ASTRING-CHAR except "+" in a tag (RFC 9051 §9 tag)', () => {
    assert.deepEqual(commands('a1 NOOP\r\nA.b-c_]9 NOOP\r\n').map((p) => p.tag), ['a1', 'A.b-c_]9']);
  });
  it('rejects a "+" or a list wildcard in the tag, without a tag', () => {
    assert.deepEqual(bad('a+1 NOOP'), { ok: false, tag: null, message: 'expected SP after tag at offset 1, found "+"' });
    assert.equal(bad('* NOOP').tag, null);
    assert.equal(bad('* NOOP').message, 'expected tag at offset 0, found "*"');
    assert.equal(bad('+ hello').message, 'expected tag at offset 0, found "+"');
  });
  it('reports the tag when a command name is missing', () => {
    assert.deepEqual(bad('abc'), { ok: false, tag: 'abc', message: 'expected SP after tag at offset 3, found end of line' });
    assert.deepEqual(bad('abc '), { ok: false, tag: 'abc', message: 'expected command name at offset 4, found end of line' });
  });
  it('treats command names case-insensitively', () => {
    assert.deepEqual(cmd('a noop'), { name: 'NOOP' });
    assert.deepEqual(cmd('a Uid fEtCh 1 uid'), { name: 'UID FETCH', set: set([1, 1]), attributes: [{ kind: 'uid' }] });
  });
  it('reports unknown commands as "unknown command X"', () => {
    assert.deepEqual(bad('t1 XYZZY foo'), { ok: false, tag: 't1', message: 'unknown command XYZZY' });
    assert.deepEqual(bad('t1 uid frob 1'), { ok: false, tag: 't1', message: 'unknown command UID FROB' });
  });
  it('parses the argument-less commands and rejects extraneous arguments', () => {
    for (const name of ['CAPABILITY', 'NOOP', 'LOGOUT', 'STARTTLS', 'IDLE', 'NAMESPACE', 'UNSELECT', 'CLOSE', 'EXPUNGE', 'CHECK'] as const) {
      assert.deepEqual(cmd(`x ${name.toLowerCase()}`), { name });
      assert.equal(bad(`x ${name} now`).message, `expected end of command at offset ${2 + name.length}, found SP`);
    }
  });
  it('requires exactly one SP between arguments (RFC 9051 §2.2.1)', () => {
    assert.equal(bad('a  NOOP').message, 'expected command name at offset 2, found SP');
    assert.equal(bad('a SELECT  INBOX').message, 'expected mailbox at offset 9, found SP');
    assert.equal(bad('a NOOP ').message, 'expected end of command at offset 6, found SP');
  });
});

describe('strings: atoms, quoted, literals', () => {
  it('LOGIN with atoms, quoted strings and escapes', () => {
    assert.deepEqual(cmd('a001 LOGIN SMITH SESAME'), { name: 'LOGIN', user: 'SMITH', password: 'SESAME' });
    assert.deepEqual(cmd('a LOGIN "fred smith" "p\\"a\\\\ss"'), { name: 'LOGIN', user: 'fred smith', password: 'p"a\\ss' });
    assert.deepEqual(cmd('a LOGIN "" ]x]'), { name: 'LOGIN', user: '', password: ']x]' });
  });
  it('rejects an invalid escape, an unterminated quoted string and NUL', () => {
    assert.equal(bad('a LOGIN "a\\b" c').message, 'invalid escape in quoted string (only \\" and \\\\ are allowed) at offset 10');
    assert.equal(bad('a LOGIN "abc').message, 'unterminated quoted string starting at offset 8');
    assert.equal(bad('a LOGIN "a\0b" c').message, 'NUL in quoted string at offset 10');
  });
  it('rejects 8-bit in quoted strings unless UTF8=ACCEPT is enabled (RFC 6855 §3)', () => {
    assert.equal(bad('a LOGIN "josé" x').message, '8-bit character in quoted string (requires ENABLE UTF8=ACCEPT; use a literal) at offset 12');
    assert.deepEqual(cmd('a LOGIN "josé" x', { utf8Accept: true }), { name: 'LOGIN', user: 'josé', password: 'x' });
    const invalid = Buffer.concat([Buffer.from('a LOGIN "'), Buffer.from([0xc3, 0x28]), Buffer.from('" x\r\n')]);
    const [p] = commands(invalid, { utf8Accept: true });
    assert.deepEqual(p, { ok: false, tag: 'a', message: 'invalid UTF-8 in quoted string starting at offset 8' });
  });
  it('accepts 8-bit UTF-8 in literals, and rejects invalid UTF-8 there', () => {
    assert.deepEqual(commands('a LOGIN {5+}\r\njosé x\r\n')[0], { ok: true, tag: 'a', command: { name: 'LOGIN', user: 'josé', password: 'x' } });
    const invalid = Buffer.concat([Buffer.from('a LOGIN {1+}\r\n'), Buffer.from([0xff]), Buffer.from(' x\r\n')]);
    assert.deepEqual(commands(invalid)[0], { ok: false, tag: 'a', message: 'invalid UTF-8 in string at offset 8' });
  });
  it('a synchronizing literal yields a continue event, then the command', () => {
    const p = parser();
    assert.deepEqual(p.push(Buffer.from('a1 LOGIN {11}\r\n')), [{ type: 'continue', text: 'Ready for literal data' }]);
    assert.equal(p.literalRemaining, 11);
    assert.deepEqual(p.push(Buffer.from('FRED FOOBAR {7}\r\n')), [{ type: 'continue', text: 'Ready for literal data' }]);
    assert.deepEqual(p.push(Buffer.from('fat man\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'a1', command: { name: 'LOGIN', user: 'FRED FOOBAR', password: 'fat man' } } }]);
  });
  it('literal data may contain CRLF, quotes and braces', () => {
    assert.deepEqual(cmd('a LOGIN {8+}\r\n"\r\n{3}\r\n x'), { name: 'LOGIN', user: '"\r\n{3}\r\n', password: 'x' });
  });
  it('a zero-length literal', () => {
    assert.deepEqual(events('a LOGIN {0}\r\n x\r\n'), [
      { type: 'continue', text: 'Ready for literal data' },
      { type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'LOGIN', user: '', password: 'x' } } },
    ]);
  });
  it('rejects an invalid command before asking for its literal (RFC 3501 §2.2.1)', () => {
    // no "+": the client will not send the literal, so the next line is a new command
    assert.deepEqual(events('a1 FROB {5}\r\na2 NOOP\r\n'), [
      { type: 'command', parsed: { ok: false, tag: 'a1', message: 'unknown command FROB' } },
      { type: 'command', parsed: { ok: true, tag: 'a2', command: { name: 'NOOP' } } },
    ]);
    assert.deepEqual(events('a1 FETCH 1 {5}\r\n'), [{ type: 'command', parsed: { ok: false, tag: 'a1', message: 'expected fetch attribute at offset 11, found "{"' } }]);
    assert.deepEqual(events('a1 LOGIN x{5}\r\n'), [{ type: 'command', parsed: { ok: false, tag: 'a1', message: 'expected SP after user name at offset 10, found "{"' } }]);
  });
  it('"{n}" after an unbalanced DQUOTE: refused before the continuation; "{n+}" octets are skipped, never run', () => {
    assert.deepEqual(events('a LOGIN "x {5}\r\na2 NOOP\r\n'), [
      { type: 'command', parsed: { ok: false, tag: 'a', message: 'unterminated quoted string starting at offset 8' } },
      { type: 'command', parsed: { ok: true, tag: 'a2', command: { name: 'NOOP' } } },
    ]);
    assert.deepEqual(events('a LOGIN "x {16+}\r\nb DELETE INBOX\r\n\r\nc NOOP\r\n'), [
      { type: 'command', parsed: { ok: false, tag: 'a', message: 'unterminated quoted string starting at offset 8' } },
      { type: 'command', parsed: { ok: true, tag: 'c', command: { name: 'NOOP' } } },
    ]);
  });
  it('LITERAL+ (RFC 7888): a non-synchronizing literal needs no continuation', () => {
    assert.deepEqual(events('a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n'), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'LOGIN', user: 'bob', password: 'secret' } } }]);
  });
  it('LITERAL- (RFC 7888 §4): non-synchronizing literals up to 4096 octets without LITERAL+', () => {
    const ok = `a LOGIN {4096+}\r\n${'u'.repeat(4096)} x\r\n`;
    assert.deepEqual(commands(ok, {})[0], { ok: true, tag: 'a', command: { name: 'LOGIN', user: 'u'.repeat(4096), password: 'x' } });
    // larger: BAD [TOOBIG] at once, the octets are consumed (never read as commands), then resync
    const big = `a LOGIN {4097+}\r\n${'b2 DELETE INBOX\r\n'.repeat(241)} x\r\nc NOOP\r\n`;
    assert.deepEqual(events(big, {}), [
      {
        type: 'command',
        parsed: { ok: false, tag: 'a', code: 'TOOBIG', message: 'non-synchronizing literal of 4097 octets is larger than 4096 (LITERAL-, RFC 7888 §4); use a synchronizing literal' },
      },
      { type: 'command', parsed: { ok: true, tag: 'c', command: { name: 'NOOP' } } },
    ]);
  });
  it('a synchronizing literal over maxLiteralSize gives literal-too-big and ends the command', () => {
    assert.deepEqual(events('a7 APPEND INBOX {2000}\r\na8 NOOP\r\n', ALL_CAPS, { maxLiteralSize: 1000 }), [
      { type: 'literal-too-big', tag: 'a7', size: 2000 },
      { type: 'command', parsed: { ok: true, tag: 'a8', command: { name: 'NOOP' } } },
    ]);
  });
  it('a non-synchronizing literal over maxLiteralSize is skipped with BAD [TOOBIG]', () => {
    const input = `a7 APPEND INBOX {20+}\r\n${'x'.repeat(20)} {3+}\r\nabc\r\na8 NOOP\r\n`;
    assert.deepEqual(events(input, ALL_CAPS, { maxLiteralSize: 10 }), [
      { type: 'command', parsed: { ok: false, tag: 'a7', code: 'TOOBIG', message: 'non-synchronizing literal of 20 octets is larger than this server accepts (10)' } },
      { type: 'command', parsed: { ok: true, tag: 'a8', command: { name: 'NOOP' } } },
    ]);
  });
  it('rejects NUL in a literal (CHAR8) but not in a literal8', () => {
    assert.equal(commands('a LOGIN {3+}\r\na\0b x\r\n')[0].ok, false);
    assert.deepEqual(commands('a LOGIN {3+}\r\na\0b x\r\n')[0], { ok: false, tag: 'a', message: 'NUL octet in literal (octet 1; use literal8) at offset 8' });
    const c = cmd('a APPEND x ~{3+}\r\na\0b');
    assert.ok(c.name === 'APPEND');
    assert.deepEqual([...c.messages[0].data], [0x61, 0, 0x62]);
    assert.equal(c.messages[0].binary, true);
  });
  it('literal8 only in APPEND and only with BINARY (RFC 3516 §4.4)', () => {
    assert.deepEqual(commands('a LOGIN ~{1+}\r\nx y\r\n')[0], { ok: false, tag: 'a', message: 'literal8 is only allowed for APPEND message data (RFC 3516 §4.4) at offset 8' });
    assert.deepEqual(commands('a APPEND x ~{1+}\r\nx\r\n', { literalPlus: true })[0], { ok: false, tag: 'a', message: 'literal8 requires the BINARY extension at offset 11' });
    // a synchronizing literal8 is refused before the continuation
    assert.deepEqual(events('a LOGIN ~{1}\r\n'), [{ type: 'command', parsed: { ok: false, tag: 'a', message: 'literal8 is only allowed for APPEND message data (RFC 3516 §4.4) at offset 8' } }]);
  });
  it('a literal split across chunks gives the same events', () => {
    const input = 'a LOGIN {5}\r\nab\r\nc {3+}\r\nx\ry\r\nb NOOP\r\n';
    const whole = events(input);
    assert.deepEqual(whole.map((e) => e.type), ['continue', 'command', 'command']);
    assert.deepEqual(eventsBytewise(input), whole);
    const p = parser();
    const got = [...p.push(Buffer.from('a LOGIN {5}\r')), ...p.push(Buffer.from('\nab')), ...p.push(Buffer.from('\r\nc {3')), ...p.push(Buffer.from('+}\r\nx\ry\r')), ...p.push(Buffer.from('\nb NOOP\r\n'))];
    assert.deepEqual(got, whole);
  });
  it('tolerates a bare LF as line end', () => {
    assert.deepEqual(commands('a NOOP\nb LOGIN {1+}\nx y\n').map((p) => p.ok), [true, true]);
  });
  it('copies input: reusing the pushed buffer does not alter results', () => {
    const p = parser();
    const buf = Buffer.from('a LOGIN {3+}\r\nabc');
    p.push(buf);
    buf.fill(0x41);
    assert.deepEqual(p.push(Buffer.from(' d\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'LOGIN', user: 'abc', password: 'd' } } }]);
  });
});

describe('pipelining, resynchronisation, limits', () => {
  it('parses pipelined commands from one chunk', () => {
    const input = 'a1 NOOP\r\na2 SELECT INBOX\r\na3 FETCH 1 UID\r\na4 LOGOUT\r\n';
    assert.deepEqual(
      commands(input).map((p) => (p.ok ? `${p.tag} ${p.command.name}` : 'error')),
      ['a1 NOOP', 'a2 SELECT', 'a3 FETCH', 'a4 LOGOUT'],
    );
  });
  it('resynchronises at the next CRLF after garbage', () => {
    const input = Buffer.concat([Buffer.from('\x00\xff((("]]\r\n'), Buffer.from('a1 FETCH (\r\n'), Buffer.from('a2 NOOP\r\n')]);
    const ps = commands(input);
    assert.equal(ps.length, 3);
    assert.deepEqual(ps[0], { ok: false, tag: null, message: 'expected tag at offset 0, found byte 0x00' });
    assert.deepEqual(ps[1], { ok: false, tag: 'a1', message: 'expected sequence-set at offset 9, found "("' });
    assert.deepEqual(ps[2], { ok: true, tag: 'a2', command: { name: 'NOOP' } });
  });
  it('ignores empty lines between commands', () => {
    assert.deepEqual(events('\r\n\r\na NOOP\r\n\n'), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'NOOP' } } }]);
  });
  it('line too long: error with the tag at once, the rest discarded to CRLF', () => {
    const input = `t9 LOGIN ${'x'.repeat(200)} y\r\nt10 NOOP\r\n`;
    const ev = events(input, ALL_CAPS, { maxLineLength: 100 });
    assert.deepEqual(ev, [
      { type: 'command', parsed: { ok: false, tag: 't9', message: 'line too long (more than 100 octets outside literals)' } },
      { type: 'command', parsed: { ok: true, tag: 't10', command: { name: 'NOOP' } } },
    ]);
    assert.deepEqual(eventsBytewise(input, ALL_CAPS, { maxLineLength: 100 }), ev);
    // no tag seen within the limit
    assert.equal(commands(`${'x'.repeat(200)}\r\n`).length, 1);
    assert.deepEqual(events('x'.repeat(200) + '\r\n', ALL_CAPS, { maxLineLength: 100 })[0], {
      type: 'command',
      parsed: { ok: false, tag: null, message: 'line too long (more than 100 octets outside literals)' },
    });
  });
  it('line too long still honours a non-synchronizing literal at the end of the discarded line', () => {
    const input = `t9 LOGIN ${'x'.repeat(200)} {10+}\r\nt8 DELETE\r\nt10 NOOP\r\n`;
    assert.deepEqual(
      commands(input, undefined).length,
      2,
    );
    const ev = events(input, ALL_CAPS, { maxLineLength: 100 });
    assert.deepEqual(ev.map((e) => (e.type === 'command' ? e.parsed.tag : e.type)), ['t9', 't10']);
  });
  it('counts every non-literal octet of a command against maxLineLength', () => {
    const input = `a LOGIN {3+}\r\nabc ${'p'.repeat(60)}\r\n`;
    assert.equal(commands(input).length, 1);
    assert.deepEqual(events(input, ALL_CAPS, { maxLineLength: 50 })[0], { type: 'command', parsed: { ok: false, tag: 'a', message: 'line too long (more than 50 octets outside literals)' } });
  });
  it('never reads non-synchronizing literal data as commands (no injection)', () => {
    const ps = commands('a LOGIN {19+}\r\nb DELETE INBOX\r\n123 x\r\n');
    assert.deepEqual(ps, [{ ok: true, tag: 'a', command: { name: 'LOGIN', user: 'b DELETE INBOX\r\n123', password: 'x' } }]);
  });
});

describe('line mode, pauses, reset', () => {
  it('expectLine delivers the next line raw (IDLE / DONE)', () => {
    const p = parser();
    assert.deepEqual(p.push(Buffer.from('a IDLE\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'IDLE' } } }]);
    p.expectLine();
    assert.deepEqual(p.push(Buffer.from('DO')), []);
    assert.deepEqual(p.push(Buffer.from('NE\r\nb NOOP\r\n')), [
      { type: 'line', text: 'DONE' },
      { type: 'command', parsed: { ok: true, tag: 'b', command: { name: 'NOOP' } } },
    ]);
  });
  it('pauses after IDLE so the server can switch to line mode first, then resumes', () => {
    const p = parser();
    const first = p.push(Buffer.from('a IDLE\r\nDONE\r\nb NOOP\r\n'));
    assert.deepEqual(first, [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'IDLE' } } }]);
    assert.equal(p.pendingBytes, 14);
    p.expectLine();
    assert.deepEqual(p.resume(), [
      { type: 'line', text: 'DONE' },
      { type: 'command', parsed: { ok: true, tag: 'b', command: { name: 'NOOP' } } },
    ]);
    assert.equal(p.pendingBytes, 0);
  });
  it('AUTHENTICATE exchanges: empty and base64 lines, "*" cancel', () => {
    const p = parser();
    assert.deepEqual(p.push(Buffer.from('a AUTHENTICATE PLAIN\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'AUTHENTICATE', mechanism: 'PLAIN' } } }]);
    p.expectLine();
    assert.deepEqual(p.push(Buffer.from('\r\n')), [{ type: 'line', text: '' }]);
    p.expectLine();
    assert.deepEqual(p.push(Buffer.from('AHVzZXIAcGFzcw==\r\n*\r\n')), [
      { type: 'line', text: 'AHVzZXIAcGFzcw==' },
      { type: 'command', parsed: { ok: false, tag: null, message: 'expected tag at offset 0, found "*"' } },
    ]);
  });
  it('expectLine while a command is being framed applies to the line after it', () => {
    const p = parser();
    p.push(Buffer.from('a LOGIN {1}\r\n'));
    p.expectLine();
    assert.deepEqual(p.push(Buffer.from('x y\r\nfoo bar\r\n')), [
      { type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'LOGIN', user: 'x', password: 'y' } } },
      { type: 'line', text: 'foo bar' },
    ]);
  });
  it('reset() drops plaintext pipelined after STARTTLS (command injection)', () => {
    const p = parser();
    assert.deepEqual(p.push(Buffer.from('a STARTTLS\r\nb LOGIN evil evil\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'a', command: { name: 'STARTTLS' } } }]);
    p.reset();
    assert.deepEqual(p.push(Buffer.from('c NOOP\r\n')), [{ type: 'command', parsed: { ok: true, tag: 'c', command: { name: 'NOOP' } } }]);
  });
  it('pauseAfter is configurable', () => {
    const p = parser(ALL_CAPS, { pauseAfter: [] });
    assert.equal(p.push(Buffer.from('a IDLE\r\nb NOOP\r\n')).length, 2);
    const q = parser(ALL_CAPS, { pauseAfter: ['ENABLE'] });
    assert.equal(q.push(Buffer.from('a ENABLE UTF8=ACCEPT\r\nb LOGIN "é" x\r\n')).length, 1);
    q.setCapabilities({ utf8Accept: true });
    assert.deepEqual(q.resume(), [{ type: 'command', parsed: { ok: true, tag: 'b', command: { name: 'LOGIN', user: 'é', password: 'x' } } }]);
  });
});

describe('chunking invariance', () => {
  it('the same events for every split of a mixed command stream', () => {
    const input =
      'a1 LOGIN {4}\r\nuser "p\\"w"\r\n' +
      'a2 APPEND INBOX (\\Seen) {5+}\r\nhello ~{2+}\r\nxy\r\n' +
      'a3 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM {2+}\r\nTO)]<0.10>)\r\n' +
      'bad line\r\n' +
      'a4 SEARCH CHARSET UTF-8 OR (FROM x) TEXT {3+}\r\nabc\r\n';
    const whole = events(input);
    assert.equal(whole.filter((e) => e.type === 'command' && e.parsed.ok).length, 4);
    const bytes = Buffer.from(input);
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = parser();
      const got = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))];
      assert.deepEqual(got, whole, `split at ${cut}`);
    }
    assert.deepEqual(eventsBytewise(input), whole);
  });
});

describe('RFC 9051 / RFC 3501 example command lines', () => {
  const examples: [string, string][] = [
    ['a002 NOOP', 'NOOP'],
    ['abcd CAPABILITY', 'CAPABILITY'],
    ['A023 LOGOUT', 'LOGOUT'],
    ['a001 STARTTLS', 'STARTTLS'],
    ['A001 AUTHENTICATE GSSAPI', 'AUTHENTICATE'],
    ['a001 LOGIN SMITH SESAME', 'LOGIN'],
    ['A142 SELECT INBOX', 'SELECT'],
    ['A932 EXAMINE blurdybloop', 'EXAMINE'],
    ['A004 CREATE foo/bar', 'CREATE'],
    ['A683 DELETE blurdybloop', 'DELETE'],
    ['A684 RENAME Foo Zap', 'RENAME'],
    ['A002 SUBSCRIBE #news.comp.mail.mime', 'SUBSCRIBE'],
    ['A002 UNSUBSCRIBE #news.comp.mail.mime', 'UNSUBSCRIBE'],
    ['A682 LIST "" *', 'LIST'],
    ['A03 LIST () "" % RETURN (CHILDREN)', 'LIST'],
    ['A04 LIST (REMOTE) "" % RETURN (CHILDREN)', 'LIST'],
    ['A05 LIST (REMOTE SUBSCRIBED) "/" *', 'LIST'],
    ['A06 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (CHILDREN)', 'LIST'],
    ['A001 NAMESPACE', 'NAMESPACE'],
    ['A042 STATUS blurdybloop (UIDNEXT MESSAGES)', 'STATUS'],
    ['a2 ENABLE IMAP4rev2', 'ENABLE'],
    ['A341 CLOSE', 'CLOSE'],
    ['A342 UNSELECT', 'UNSELECT'],
    ['A202 EXPUNGE', 'EXPUNGE'],
    ['FXXZ CHECK', 'CHECK'],
    ['A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"', 'SEARCH'],
    ['A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])', 'FETCH'],
    ['A003 STORE 2:4 +FLAGS (\\Deleted)', 'STORE'],
    ['A003 COPY 2:4 MEETING', 'COPY'],
    ['a UID MOVE 42:69 foo', 'UID MOVE'],
    ['A999 UID FETCH 4827313:4828442 FLAGS', 'UID FETCH'],
    ['A003 UID EXPUNGE 3000:3002', 'UID EXPUNGE'],
    ['a IDLE', 'IDLE'],
  ];
  for (const [line, name] of examples) {
    it(line, () => assert.equal(cmd(line).name, name));
  }
});

describe('more framing cases', () => {
  it('a zero-length non-synchronizing literal, then the rest of the command', () => {
    assert.deepEqual(cmd('a LOGIN {0+}\r\n x'), { name: 'LOGIN', user: '', password: 'x' });
  });
  it('a synchronizing literal of a command already answered (line too long) gets no continuation', () => {
    const input = `a LOGIN ${'x'.repeat(100)} {5}\r\nb NOOP\r\n`;
    assert.deepEqual(events(input, ALL_CAPS, { maxLineLength: 50 }), [
      { type: 'command', parsed: { ok: false, tag: 'a', message: 'line too long (more than 50 octets outside literals)' } },
      { type: 'command', parsed: { ok: true, tag: 'b', command: { name: 'NOOP' } } },
    ]);
  });
  it('an absurd synchronizing literal size', () => {
    const ev = events('a APPEND x {99999999999999999999999}\r\n');
    assert.deepEqual(ev, [{ type: 'literal-too-big', tag: 'a', size: 1e23 }]);
  });
  it('a BADCHARSET command still gets its continuation, then NO [BADCHARSET]', () => {
    assert.deepEqual(events('a SEARCH CHARSET X-NOPE TEXT {3}\r\nabc\r\n'), [
      { type: 'continue', text: 'Ready for literal data' },
      { type: 'command', parsed: { ok: false, tag: 'a', message: 'unsupported charset "X-NOPE" at offset 17', code: 'BADCHARSET' } },
    ]);
  });
  it('state getters: inCommand, literalRemaining, expectingLine, pendingBytes', () => {
    const p = parser();
    assert.equal(p.inCommand, false);
    p.push(Buffer.from('a LOG'));
    assert.equal(p.inCommand, true);
    p.push(Buffer.from('IN {4+}\r\nab'));
    assert.equal(p.literalRemaining, 2);
    p.push(Buffer.from('cd x\r\n'));
    assert.equal(p.inCommand, false);
    p.expectLine();
    assert.equal(p.expectingLine, true);
    p.push(Buffer.from('DONE\r\n'));
    assert.equal(p.expectingLine, false);
    assert.equal(p.pendingBytes, 0);
  });
});
