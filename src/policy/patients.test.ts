// Patient addresses, sizes, [FIN] and the conversation rule (policy/patients.ts), and the
// MSSanté header fields' syntax (policy/mssante-headers.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { checkMssHeaders } from './mssante-headers.js';
import { buildAutomaticAnswer, decidePatientRecipient, decidePatientReply, decidePatientSize, endsConversation, insProblem, patientReplyText, withInsKey } from './patients.js';

const S = { domain: 'patient.mssante.fr', maxMessageSize: 25 * 1024 * 1024 };
const head = (...lines: string[]) => Buffer.from([...lines, '', ''].join('\r\n'));

describe('INS (NIR / NIA) of a patient address', () => {
  test('valid: the INSEE example NIR, a NIA, a Corsican 2A/2B NIR', () => {
    assert.equal(insProblem('255081416802538'), null); // key 97 − (2550814168025 mod 97) = 38
    assert.equal(insProblem(withInsKey('7850575123456')), null);
    assert.equal(insProblem('292112A00401264'), null); // 2A counts as 19: 97 − (2921119004012 mod 97) = 64
    assert.equal(insProblem('292112a00401264'), null);
    assert.equal(insProblem(withInsKey('292112B004012')), null);
    assert.notEqual(withInsKey('292112B004012').slice(13), '64', '2B (18) has another key than 2A (19)');
  });
  test('each rule, named', () => {
    assert.equal(insProblem('25508141680253')?.rule, 'length');
    assert.equal(insProblem('2550814168025388')?.rule, 'length');
    assert.equal(insProblem('25508141680X538')?.rule, 'characters');
    assert.equal(insProblem('2550814 6802538')?.rule, 'characters');
    assert.equal(insProblem(withInsKey('5550814168025'))?.rule, 'sex');
    assert.equal(insProblem(withInsKey('2551314168025'))?.rule, 'month');
    const k = insProblem('255081416802539');
    assert.equal(k?.rule, 'key');
    assert.match(k!.detail, /clé 39 au lieu de 38/);
    assert.equal(insProblem('292112B00401264')?.rule, 'key', 'a 2A key on a 2B number');
  });
  test('RCPT refusal 553 5.1.3, ASCII, naming the rule; other domains untouched', () => {
    const r = decidePatientRecipient('255081416802539@patient.mssante.fr', S)!;
    assert.equal(r.code, 553);
    assert.equal(r.enhanced, '5.1.3');
    const text = patientReplyText(r);
    assert.match(text, /^[\x20-\x7e]+$/);
    assert.match(text, /cle 39 au lieu de 38/);
    assert.match(text, /\[rule patient-address\]$/);
    assert.equal(decidePatientRecipient('255081416802538@PATIENT.mssante.fr', S), null);
    assert.equal(decidePatientRecipient('dr.x@a.mssante.fr', S), null);
    assert.equal(decidePatientRecipient('jean.dupont@patient.mssante.fr', S)?.code, 553);
    assert.equal(decidePatientRecipient('reponse.automatique-test@patient.mssante.fr', S), null, 'the service’s test address');
  });
});

test('size towards patients: 552 5.3.4 naming the limit', () => {
  assert.equal(decidePatientSize(S.maxMessageSize, S), null);
  const r = decidePatientSize(S.maxMessageSize + 1, S)!;
  assert.equal(`${r.code} ${r.enhanced}`, '552 5.3.4');
  assert.match(r.text, /26214401 octets, la limite vers les patients est de 26214400 octets \(25 Mo\)/);
});

test('[FIN]: subject exactly [FIN] or X-MSS-MES: FIN', () => {
  assert.equal(endsConversation(head('Subject: [FIN]')), true);
  assert.equal(endsConversation(head('Subject:  [FIN] ')), true);
  assert.equal(endsConversation(head('Subject: =?utf-8?Q?[FIN]?=')), true);
  assert.equal(endsConversation(head('Subject: Re: [FIN]')), false);
  assert.equal(endsConversation(head('Subject: [FIN] merci')), false);
  assert.equal(endsConversation(head('Subject: Résultats', 'X-MSS-MES: FIN')), true);
  assert.equal(endsConversation(head('Subject: Résultats')), false);
});

test('conversation rule: none → refused, closed → refused naming [FIN], open → accepted', () => {
  assert.equal(decidePatientReply('dr@a.fr', undefined)?.rule, 'patient-conversation-not-started');
  const closed = decidePatientReply('dr@a.fr', { openedAt: '2026-12-01T10:00:00Z', closedAt: '2026-12-02T10:00:00Z' })!;
  assert.equal(`${closed.code} ${closed.enhanced} ${closed.rule}`, '550 5.7.1 patient-conversation-closed');
  assert.match(patientReplyText(closed), /clos cet echange \(\[FIN\]\) le 2026-12-02/);
  assert.equal(decidePatientReply('dr@a.fr', { openedAt: '2026-12-01T10:00:00Z', closedAt: null }), null);
});

test('automatic answer: RFC 3834 Auto-Submitted, French, In-Reply-To the original', async () => {
  const raw = (await buildAutomaticAnswer({
    reason: 'unknown',
    patient: '255081416802538@patient.mssante.fr',
    from: 'ne-pas-repondre@patient.mssante.fr',
    to: 'dr@a.mssante.fr',
    originalHeader: head('Subject: Compte rendu', 'Message-ID: <m1@a>'),
    hostname: 'mx.patient',
  })).toString();
  assert.match(raw, /^Auto-Submitted: auto-replied\r$/m);
  assert.match(raw, /^In-Reply-To: <m1@a>\r$/m);
  assert.match(raw, /^To: dr@a\.mssante\.fr\r$/m);
  const parsed = await simpleParser(raw);
  assert.equal(parsed.subject, 'Réponse automatique : Compte rendu');
  assert.match(parsed.text ?? '', /aucune messagerie Mon espace santé n'est ouverte pour ce patient/);
});

describe('X-MSS-* fields at submission (550 5.6.0)', () => {
  const P = { domain: 'patient.mssante.fr' };
  const check = (lines: string[], recipients = ['dr@b.mssante.fr']) => checkMssHeaders({ header: head('From: a@b', ...lines), recipients, patients: P });
  test('valid fields pass', () => {
    assert.equal(check(['X-MSS-INS: O', 'X-MSS-CODECDA: 11488-4, 34133-9', 'X-MSS-NIL: Logiciel Démo 1.2']), null);
    assert.equal(check(['X-MSS-INS: N', 'X-MSS-CODECDA:', ' 11488-4,CERT_DECL']), null);
    // Multi-valued: one field per code (what src/xdm writes) is accepted too, each value checked.
    assert.equal(check(['X-MSS-CODECDA: 11488-4', 'X-MSS-CODECDA: 34133-9']), null);
    assert.match(check(['X-MSS-CODECDA: 11488-4', 'X-MSS-CODECDA: bad code'])!.text, /code "bad code" invalide/);
    assert.equal(check(['X-MSS-MES: FIN'], ['255081416802538@patient.mssante.fr']), null);
    assert.equal(check([]), null);
  });
  test('each bad field refused with a precise text', () => {
    const ins = check(['X-MSS-INS: oui'])!;
    assert.equal(`${ins.code} ${ins.enhanced} ${ins.rule}`, '550 5.6.0 x-mss-ins');
    assert.match(ins.text, /X-MSS-INS: "oui" invalide ; valeurs admises : O \(INS qualifié\) ou N/);
    assert.equal(check(['X-MSS-INS: o'])?.rule, 'x-mss-ins');
    assert.equal(check(['X-MSS-INS: O', 'X-MSS-INS: N'])?.text, 'le champ X-MSS-INS apparaît 2 fois ; il doit être unique');
    assert.match(check(['X-MSS-CODECDA: 11488-4,,34133-9'])!.text, /valeur vide/);
    assert.match(check(['X-MSS-CODECDA: 11488-4 34133-9'])!.text, /code "11488-4 34133-9" invalide/);
    assert.equal(check(['X-MSS-NIL: '])?.rule, 'x-mss-nil');
    assert.equal(check(['X-MSS-MES: STOP'], ['255081416802538@patient.mssante.fr'])?.rule, 'x-mss-mes');
    const mes = check(['X-MSS-MES: FIN'], ['255081416802538@patient.mssante.fr', 'dr@b.mssante.fr'])!;
    assert.equal(mes.rule, 'x-mss-mes-recipients');
    assert.match(mes.text, /s'emploie seulement vers des patients \(@patient\.mssante\.fr\) ; destinataire\(s\) non patient\(s\) : dr@b\.mssante\.fr$/);
  });
});
