#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_jwt under fuzz/corpus/jwt/ (run from
anywhere; rewrites only the files it names). Needs only the `openssl`
command: it makes fresh keys (RSA 2048, EC P-256, Ed25519), a JWKS of them,
and tokens signed with them, so every run writes new bytes; the committed
files are the corpus, this script only remakes it.

Seed layout (see fuzz_jwt.c): one policy byte, the JWKS text, LF, the token.
"""
import base64, hashlib, hmac, json, os, subprocess, tempfile

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, 'corpus', 'jwt')

NOW = 1700000000
ISSUER = 'https://issuer.example'
SECRET = b'patterngate-fuzz-hs256-secret-0123456789'
# all four algorithms, issuer and audiences checked, leeway 0, secret set
POLICY = 0x3F


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def openssl(*args, data=None):
    return subprocess.run(['openssl', *args], input=data, capture_output=True, check=True).stdout


# ---- DER, just enough for public keys and ECDSA signatures --------------------
def der_read(b, pos):
    """(tag, content start, content end) of the TLV at pos."""
    tag, length = b[pos], b[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(b[pos:pos + count], 'big')
        pos += count
    return tag, pos, pos + length


def der_children(b, start, end):
    while start < end:
        tag, s, e = der_read(b, start)
        yield tag, s, e
        start = e


def spki_key_bytes(der):
    """The BIT STRING content (without its unused-bits byte) of an SPKI."""
    _, s, e = der_read(der, 0)
    children = list(der_children(der, s, e))
    _, bs, be = children[1]
    return der[bs + 1:be]


def integer_bytes(b):
    return b.lstrip(b'\x00') or b'\x00'


class Keys:
    def __init__(self, tmp):
        self.tmp = tmp
        self.paths = {}
        for name, args in (('rsa1', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']),
                           ('rsa2', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']),
                           ('ec1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']),
                           ('ed1', ['-algorithm', 'ED25519'])):
            path = os.path.join(tmp, name + '.pem')
            openssl('genpkey', *args, '-out', path)
            self.paths[name] = path

    def public_der(self, name):
        return openssl('pkey', '-in', self.paths[name], '-pubout', '-outform', 'DER')

    def public_pem(self, name):
        return openssl('pkey', '-in', self.paths[name], '-pubout')

    def jwk(self, name, **extra):
        key = spki_key_bytes(self.public_der(name))
        if name.startswith('rsa'):
            _, s, e = der_read(key, 0)
            (_, ns, ne), (_, es, ee) = der_children(key, s, e)
            jwk = {'kty': 'RSA', 'kid': name, 'use': 'sig',
                   'n': b64url(integer_bytes(key[ns:ne])), 'e': b64url(integer_bytes(key[es:ee]))}
        elif name.startswith('ec'):
            jwk = {'kty': 'EC', 'crv': 'P-256', 'kid': name, 'x': b64url(key[1:33]), 'y': b64url(key[33:65])}
        else:
            jwk = {'kty': 'OKP', 'crv': 'Ed25519', 'kid': name, 'alg': 'EdDSA', 'x': b64url(key)}
        jwk.update(extra)
        return jwk

    def sign(self, alg, name, msg, der_ecdsa=False):
        if alg == 'HS256':
            return hmac.new(name, msg, hashlib.sha256).digest()  # name is the secret
        path = os.path.join(self.tmp, 'msg')
        with open(path, 'wb') as f:
            f.write(msg)
        if alg == 'EdDSA':
            return openssl('pkeyutl', '-sign', '-rawin', '-inkey', self.paths[name], '-in', path)
        sig = openssl('dgst', '-sha256', '-sign', self.paths[name], path)
        if alg == 'ES256' and not der_ecdsa:
            _, s, e = der_read(sig, 0)
            (_, rs, re), (_, ss, se) = der_children(sig, s, e)
            sig = integer_bytes(sig[rs:re]).rjust(32, b'\x00') + integer_bytes(sig[ss:se]).rjust(32, b'\x00')
        return sig


def compact(obj):
    return obj if isinstance(obj, bytes) else json.dumps(obj, separators=(',', ':')).encode()


def claims(**over):
    c = {'sub': 'u42', 'iss': ISSUER, 'aud': 'api', 'iat': NOW - 10, 'exp': NOW + 3600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        keys = Keys(tmp)
        jwks = compact({'keys': [keys.jwk('rsa1'), keys.jwk('rsa2'), keys.jwk('ec1'), keys.jwk('ed1')]})
        signer = {'RS256': 'rsa1', 'ES256': 'ec1', 'EdDSA': 'ed1', 'HS256': SECRET}
        kids = {'RS256': 'rsa1', 'ES256': 'ec1', 'EdDSA': 'ed1', 'HS256': None}

        def token(alg, payload, header=None, sign_as=None, key=None, der_ecdsa=False):
            if header is None:
                header = {'alg': alg, 'typ': 'JWT'}
                if kids[alg]:
                    header['kid'] = kids[alg]
            msg = (b64url(compact(header)) + '.' + b64url(compact(payload))).encode()
            sig_alg = sign_as or alg
            sig = keys.sign(sig_alg, key or signer[sig_alg], msg, der_ecdsa)
            return msg + b'.' + b64url(sig).encode()

        def put(name, tok, jwks_text=jwks, policy=POLICY):
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, name), 'wb') as f:
                f.write(bytes([policy]) + jwks_text + b'\n' + tok)

        for alg in ('RS256', 'ES256', 'EdDSA', 'HS256'):
            low = alg.lower()
            put(f'valid-{low}', token(alg, claims()))
            put(f'valid-{low}-no-kid', token(alg, claims(), header={'alg': alg}))
            put(f'expired-{low}', token(alg, claims(exp=NOW - 1)))
            tok = token(alg, claims())
            put(f'bad-signature-{low}', tok[:-6] + (b'AAAAAA' if not tok.endswith(b'AAAAAA') else b'BBBBBA'))
        put('valid-rs256-second-key', token('RS256', claims(), header={'alg': 'RS256'}, key='rsa2'))
        put('exp-within-leeway', token('ES256', claims(exp=NOW - 30)), policy=POLICY | 0x40)
        put('exp-decimal', token('EdDSA', claims(exp=NOW + 0.5, nbf=NOW - 0.25)))
        put('nbf-future', token('RS256', claims(nbf=NOW + 100)))
        put('no-exp', token('HS256', claims(exp=None)))
        put('wrong-iss', token('ES256', claims(iss='https://evil.example')))
        put('aud-array', token('EdDSA', claims(aud=['other', 'admin'])))
        put('wrong-aud-array', token('EdDSA', claims(aud=['other', 7])))
        put('no-policy-checks', token('HS256', claims(iss=None, aud=None)), policy=0x0F)
        put('big-numbers-and-nul',
            token('RS256', b'{"exp":2000000000.5,"big":123456789012345678901234567890,'
                           b'"nul":"a\\u0000b","lone":"\\ud800","e":-0.0e-0}'), policy=0x0F)
        put('alg-none', b64url(b'{"alg":"none"}').encode() + b'.' + b64url(compact(claims())).encode() + b'.')
        put('alg-none-signed', token('HS256', claims(), header={'alg': 'none'}))
        put('alg-none-two-parts', b64url(b'{"alg":"none"}').encode() + b'.' + b64url(compact(claims())).encode())
        put('alg-not-allowed', token('ES256', claims()), policy=POLICY & ~0x02)
        put('alg-rs512', token('RS256', claims(), header={'alg': 'RS512', 'kid': 'rsa1'}))
        put('hs256-with-rsa-pem', token('HS256', claims(), header={'alg': 'HS256', 'kid': 'rsa1'},
                                        key=keys.public_pem('rsa1')))
        put('no-hs256-secret', token('HS256', claims()), policy=POLICY | 0x80)
        put('kid-unknown', token('RS256', claims(), header={'alg': 'RS256', 'kid': 'nope'}))
        put('kid-other-type', token('ES256', claims(), header={'alg': 'ES256', 'kid': 'rsa1'}))
        put('es256-der-signature', token('ES256', claims(), der_ecdsa=True))
        put('crit', token('HS256', claims(), header={'alg': 'HS256', 'crit': ['exp'], 'exp': 1}))
        put('header-not-object', token('HS256', claims(), header=b'["HS256"]', sign_as='HS256'))
        put('payload-array', token('HS256', b'[{"exp":2000000000}]'))
        tok = token('HS256', claims())
        put('padding', tok + b'=')
        put('four-parts', tok + b'.AAAA')
        put('whitespace', tok.replace(b'.', b'. ', 1))
        put('no-jwks', tok, jwks_text=b'')
        skipped = compact({'keys': [{'kty': 'oct', 'k': 'c2VjcmV0'},
                                    {'kty': 'EC', 'crv': 'P-384', 'x': 'x', 'y': 'y'},
                                    {'kty': 'OKP', 'crv': 'X25519', 'x': 'x'},
                                    keys.jwk('rsa1', use='enc'), keys.jwk('rsa2', alg='PS256'),
                                    keys.jwk('ec1', alg='ES256'), keys.jwk('ed1')]})
        put('jwks-with-skipped-keys', token('ES256', claims()), jwks_text=skipped)
        bad = keys.jwk('rsa1')
        bad['n'] = bad['n'][:10] + '+' + bad['n'][11:]
        put('jwks-bad-n', token('RS256', claims()), jwks_text=compact({'keys': [keys.jwk('ec1'), bad]}))
        bad = keys.jwk('ec1')
        bad['y'] = bad['y'][:-2] + ('AA' if bad['y'][-2:] != 'AA' else 'BA')
        put('jwks-ec-off-curve', token('ES256', claims()), jwks_text=compact({'keys': [bad]}))


if __name__ == '__main__':
    main()
