#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/ (run from anywhere;
rewrites only the files it names). The frames are real Nest packets from
../shared/PROTOCOL.md; the configs follow config/examples/."""
import json, os, shutil

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, 'corpus')


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def units(b):  # JavaScript String.length of UTF-8 bytes
    return len(b.decode('utf-8', 'surrogatepass').encode('utf-16-le', 'surrogatepass')) // 2


def frame(text):
    b = text.encode('utf-8') if isinstance(text, str) else text
    return str(units(b)).encode() + b'#' + b


# ---- packets (PROTOCOL.md) -----------------------------------------------------
replies = {
    'value': '{"id":"1","response":6}',
    'last_value': '{"response":"héllo 한국 😀","isDisposed":true,"id":"u1"}',
    'done': '{"id":"2","isDisposed":true}',
    'error': '{"id":"3","err":{"statusCode":403,"message":"nope"},"isDisposed":true}',
    'error_text': '{"err":{"status":"error","message":"text"},"isDisposed":true,"id":"4"}',
    'no_handler': '{"id":"5","status":"error","err":"There is no matching message handler defined in the remote service."}',
    'null_response': '{"id":"6","response":null,"isDisposed":true}',
    'undefined': '{"id":"7"}',
    'err_null': '{"id":"8","err":null,"response":[1,2],"isDisposed":false}',
    'weird_values': '{"id":"9","response":{"big":12345678901234567890123,"nul":"\\u0000","lone":"\\ud800","pair":"\\ud83d\\ude00","d":0.1,"e":-1.5e-300},"isDisposed":1}',
    'repeated_keys': '{"id":"10","response":1,"response":2,"isDisposed":0,"isDisposed":"x"}',
    'escaped_keys': '{"\\u0069d":"11","resp\\u006fnse":"v","isDisposed":true}',
    'uuid_id': '{"id":"0c1e6a7e-6f1d-4c53-9a36-d4c2a3f7a0b1","response":{"a":[true,false,null]}}',
    'emoji': '{"id":"12","response":"😀😀😀🎉","isDisposed":true}',
    'nested': '{"id":"13","response":[[[[{"a":{"b":[1,{"c":"d"}]}}]]]]}',
    'whitespace': ' \t\n{ "id" : "14" , "response" : [ 1 , 2 ] }\r\n',
}
requests = {
    'request': '{"pattern":{"cmd":"sum"},"data":[1,2,3],"id":"7"}',
    'request_spaced': '{"pattern":{ "cmd" : "sum" },"data":[1,2,3],"id":"7"}',
    'event': '{"pattern":"user_created","data":{"n":"한"}}',
    'event_metadata': '{"pattern":"e","data":null,"metadata":{}}',
}

# json: documents, including what jansson rejects and jscan accepts
json_docs = dict(replies)
json_docs.update(requests)
json_docs.update({
    'scalar_string': '"caf\\u00e9 \\t \\" \\\\ \\/ \\b\\f\\n\\r"',
    'scalar_numbers': '[0,-0,1e10,1E-5,-1.25e+3,9223372036854775807,-9223372036854775808,1e400]',
    'literals': '[true,false,null,{},[]]',
    'big_int': '123456789012345678901234567890',
    'lone_surrogates': '["\\ud800","\\udc00","\\ud800\\u0041"]',
    'nul_key': '{"a\\u0000b":1}',
    'bad_utf8': b'{"id":"1","response":"\xc3\x28"}',
    'bad_trailing': '{"id":"1"} x',
    'bad_comma': '{"id":"1",}',
    'deep': '[' * 40 + ']' * 40,
    'too_deep': '[' * 600 + ']' * 600,
    'raw_utf8': '{"k":"Ünïcödé 𝄞 ✓ 日本語"}',
})
for k, v in json_docs.items():
    put('json', k, v)

# frame: [limit selector][k | flags][k chunk sizes][stream]
def frame_seed(name, stream, limit=8, sizes=b''):
    put('frame', name, bytes([limit, len(sizes)]) + sizes + stream)

all_frames = b''.join(frame(v) for v in list(replies.values()) + list(requests.values()))
frame_seed('all_packets_whole', all_frames)
frame_seed('all_packets_split', all_frames, sizes=bytes([1, 7, 3, 64, 2, 0, 13]))
frame_seed('emoji_split_in_char', frame(replies['emoji']), sizes=bytes([17, 1, 1, 1, 2]))
frame_seed('last_value_bytes', frame(replies['last_value']), sizes=bytes([1]))
frame_seed('small_limit', all_frames, limit=5, sizes=bytes([30]))
frame_seed('empty_message', b'0#2#{}0#', sizes=bytes([1]))
frame_seed('bad_prefix', b'2#{}x#{}')
frame_seed('no_digits', b'#{}')
frame_seed('too_many_digits', b'1234567890123456#{}')
frame_seed('inside_pair', b'1#' + '😀'.encode())
frame_seed('bad_utf8', b'4#"\xed\xa0\x80"')
frame_seed('overlong', b'3#"\xc0\xaf"', sizes=bytes([2, 1]))
frame_seed('incomplete', frame(replies['value'])[:-3], sizes=bytes([5]))
frame_seed('tls_record', b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')

# config: the examples, plus small valid and invalid ones
examples = os.path.join(here, '..', 'config', 'examples')
for f in sorted(os.listdir(examples)):
    with open(os.path.join(examples, f), 'rb') as src:
        put('config', f, src.read())
put('config', 'empty_object.json', '{}')
put('config', 'minimal_route.json', json.dumps({
    "services": {"s": {"endpoints": ["127.0.0.1:3000"]}},
    "routes": [{"method": "POST", "service": "s", "pattern": 1, "path": "/a/:b/*c",
                "data": {"b": "$path.b:int", "c": "$path.c", "q": "$query.q:json",
                         "h": "$header.X-H:bool", "n": "$body.n.m:number"}}]}))
put('config', 'env.json', '{"listen":"${HOST}:${PORT:-1}","services":{"s":{"endpoints":["${NOPE:-127.0.0.1:1}"]}},'
    '"auth":{"bearer_tokens":["${TOKEN}","$${lit}"]}}')
put('config', 'templates.json', json.dumps({
    "services": {"s": {"endpoints": ["127.0.0.1:1"]}},
    "routes": [
        {"method": "PATCH", "service": "s", "pattern": "u", "path": "/b/:id",
         "data": {"...": "$body", "id": "$path.id:int", "t": "$body.title?"}},
        {"method": "GET", "service": "s", "pattern": "q", "path": "/q/*rest",
         "data": {"...": ["$query", "$jwt", "$header.x:json?"], "h": "$headers", "p": "$path",
                  "ip": "$client.ip", "sub": "$jwt.sub?", "o": "$jwt.claims.org.id:int?",
                  "d": ["$$lit", "$query.n:number?"]}},
        {"method": "DELETE", "service": "s", "pattern": "d", "path": "/b/:id"},
        {"method": "POST", "service": "s", "pattern": "bad", "path": "/x",
         "data": {"a": "$qeury.id", "b": "$Body", "c": "$header", "...": "$path.x"}}]}))
put('config', 'rest_replies.json', json.dumps({
    "services": {"s": {"endpoints": ["127.0.0.1:1"]}},
    "routes": [
        {"method": "GET", "service": "s", "pattern": "books.get", "path": "/books/:id", "reply": "envelope",
         "data": {"id": "$path.id:int"}},
        {"method": "POST", "service": "s", "pattern": "books.create", "path": "/books", "reply": "envelope",
         "status": 201},
        {"method": "GET", "service": "s", "pattern": "books.list", "path": "/books", "reply": "array"},
        {"method": "POST", "service": "s", "pattern": "e", "path": "/e", "kind": "emit", "reply": "envelope"}]}))
put('config', 'duplicate_key.json', '{"listen":"127.0.0.1:1","listen":"127.0.0.1:2"}')
put('config', 'syntax_error.json', '{\n  "services": {\n    "s": [\n}')
# JSON mistakes that config/cfg_syntax.c explains, and a config with a
# problem in every part (the loader lists them all)
put('config', 'hint_missing_comma.json', '{\n  "listen": "127.0.0.1:1"\n  "workers": 2\n}')
put('config', 'hint_trailing_comma.json', '{"services": {"s": {"endpoints": ["h:1",]}},}')
put('config', 'hint_unquoted_key.json', "{listen: '127.0.0.1:1', // here\n \"x\": \"y\n}")
put('config', 'many_problems.json', json.dumps({
    "listen": "x", "workers": 0, "timout": 1, "log": {"level": "Debug"},
    "services": {"a b": {"endpoint": ["h"]}, "s": {"endpoints": ["h:1", 5], "conect": "lazy"}},
    "generic_api": ["s", "nope"],
    "routes": [{"method": "get", "path": "/a//b", "service": "t", "pattern": 1, "status": 1},
               {"method": "GET", "path": "/a/:x", "service": "s", "pattern": 1,
                "data": {"x": "$path.y", "z": "$query.q:integer"}},
               {"method": "*", "path": "/a/:y", "service": "s", "pattern": 2}]}))
put('config', 'conflict.json', json.dumps({
    "services": {"s": {"endpoints": ["127.0.0.1:3000"]}},
    "routes": [{"method": "GET", "service": "s", "pattern": 1, "path": "/a/:x"},
               {"method": "*", "service": "s", "pattern": 2, "path": "/a/:y"}]}))
put('config', 'schema_key.json', '{"$schema":"./patterngate.schema.json ${not substituted","listen":"127.0.0.1:1"}')
put('config', 'tls_relative.json', json.dumps({
    "services": {"s": {"endpoints": ["h:1"], "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem",
                                                     "verify": False}}}}))

# config_edit: [base][ops...]
edits = {
    'routes_as_is': b'\x00', 'ingress_as_is': b'\x01', 'spec_as_is': b'\x02', 'egress_as_is': b'\x03',
    'routes_set': b'\x00\x00\x05\x30\x00\x09\x44',
    'routes_text': b'\x00\x01\x0c\x08/x/:y/*z',
    'routes_delete': b'\x00\x02\x03\x02\x11\x02\x20',
    'ingress_add': b'\x01\x03\x00\x22\x07\x03\x04\x03\x10',
    'spec_append': b'\x02\x04\x1e\x1f\x04\x14\x15',
    'spec_integer': b'\x02\x05\x05\xff\xff\xff\xff\x05\x06\x00\x00\x01\x00',
    'routes_suffix': b'\x00\x06\x0c\x00\x06\x20\x03\x06\x21\x0e',
    'egress_rename': b'\x03\x07\x04\x01\x07\x09\x2a',
}
for k, v in edits.items():
    put('config_edit', k, v)

# route: METHOD SP PATH[?QUERY] LF headers LF body
routes = {
    'users_get': 'GET /users/7?full=true\nX-Tenant: acme\n\n',
    'users_me': 'GET /users/me\n\n',
    'users_delete_me': 'DELETE /users/me\n\n',
    'users_405': 'PUT /users/7\n\n',
    'users_post': 'POST /users\n\n{"name":"ann","n":12345678901234567890}',
    'files_put': 'PUT /files/a/b%2Fc//d.txt\n\n{"meta":{"size":"1.5e3"},"x":"\\u0000"}',
    'files_raw': 'GET /files/report.pdf/raw?q=%7B%22a%22%3A%5B1%5D%7D\nContent-Length: 42\n\n',
    'any_rest': 'OPTIONS /any/x/a/b/c\n\n{"a":"007","b":{"c":[1,{"d":null}]},"d":"true","e":"\\ud800"}',
    'any_fixed': 'POST /any/fixed/z\n\n{"x":{"y":{"z":1}}}',
    'a_precedence': 'PATCH /a/b/c\n\n',
    'a_param': 'PATCH /a/2.5/c\n\n',
    'events': 'POST /events/created?q=%C3%A9\nX-Count: -42\nX-H: {"k":[true]}\n\n{"id":7}',
    'encoded': 'GET /caf%C3%A9/%2F/%7B%7D\n\n',
    'raw_utf8': 'GET /ünï/x%20y\n\n',
    'root': 'HEAD /\n\n',
    'orders': 'GET /orders?page=-0&filter=%5B%5D&p=1e2\n\n',
    'orders_items': 'POST /orders/12/items/x/\n\n{"items":[1,2],"n":"-0.5","s":"9223372036854775807"}',
    'bad_path': 'GET /users/%zz\n\n',
    'nul_path': 'GET /users/%00\n\n',
    'no_slash': 'GET users\n\n',
    'not_found': 'GET /nope/a/b\n\n',
    'bad_body': 'PUT /files/x\n\n{"meta":',
    'bad_int': 'GET /users/x1?full=yes\n\n',
    'ticks': 'GET /ticks\n\n',
    'ticks_head': 'HEAD /ticks\n\n',
    'books_head': 'HEAD /books/2?q=1\n\n',
    'books_get_envelope': 'GET /books/7\n\n',
    'books_405': 'PUT /books/2\n\n',
    'users_head_405': 'HEAD /users\n\n',
    # templates: spreads, optional members, whole sources, $jwt, forms, no data
    'books_patch': 'PATCH /books/2?q=x\nContent-Type: application/json\n\n{"rating":5,"id":"x","\\u0069d":1,"rating":6}',
    'books_patch_array': 'PATCH /books/2\n\n[1,2]',
    'books_patch_form': 'PATCH /books/2\ncontent-type: application/x-www-form-urlencoded\n\ntitle=A+b&title=C&n=%7B%7D',
    'books_patch_bad_form': 'PATCH /books/2\ncontent-type: application/x-www-form-urlencoded\n\ntitle=%zz',
    'books_delete': 'DELETE /books/2\n\n',
    'books_delete_body': 'DELETE /books/2\n\n{"soft":true}',
    'search': 'GET /search?q=a&q=b&limit=10&f=%7B%22z%22%3A1%7D\nX-A: 1\nx-a: 2\nx-h: {"k":1}\nx-k: KKK\n'  # size & 2: headers walked
              'x-claims: {"sub":"u1","org":{"id":"42"},"roles":["r"]}\nx-client: ::ffff:10.0.0.1\n\n',
    'search_bad': 'GET /search?limit=x&f=%5B1%5D\nx-h: [1]\nx-claims: {"org":{"id":true}}\nx-client: 2001:db8::1\n\n',
    'forms': 'POST /forms/contact\nContent-Type: Application/X-WWW-Form-Urlencoded; charset=UTF-8\n\n'
             'f=7&meta=%7B%22m%22%3A1%7D&o=x&k=%C3%A9&f=8',
    'forms_json': 'POST /forms/x\ncontent-type: text/plain\n\n{"f":"12","meta":"{\\"a\\":1}","o":{"d":null,"p":1},"k":[null]}',
    'forms_json_bad': 'POST /forms/x\ncontent-type: text/plain\n\nf=1',
}
for k, v in routes.items():
    put('route', k, v)

# envelope: byte 0 (low 2 bits: how many reply values; the rest: the route's
# status - 200), then the values' text
envelopes = {
    'created': (1, '{"status":201,"headers":{"Location":"/books/3"},"body":{"id":3,"title":"Dune"}}'),
    'not_found': (1, '{"status":404,"body":{"statusCode":404,"message":"no book 42"}}'),
    'no_content': (1, '{"status":204}'),
    'empty': (1, '{}'),
    'cache': (1, '{"headers":{"Cache-Control":"max-age=60","ETag":"\\"v1\\""},"body":[1,2]}'),
    'content_type': (1, '{"headers":{"content-type":"text/plain; charset=utf-8"},"body":"hi \\ud800"}'),
    'route_status': (5, '{"body":null}'),
    'string_body': (1, '{"body":"a \\"string\\""}'),
    'big_body': (1, '{"body":{"big":12345678901234567890123,"nul":"\\u0000","e":1e400}}'),
    'injection': (1, '{"headers":{"Location":"/x\\r\\nSet-Cookie: a=1"}}'),
    'bad_name': (1, '{"headers":{"X A":"1"}}'),
    'reserved': (1, '{"headers":{"Transfer-Encoding":"chunked","Connection":"close"}}'),
    'duplicate': (1, '{"headers":{"X-A":"1","x-\\u0061":"2"}}'),
    'bad_status': (1, '{"status":2e2}'),
    'big_status': (1, '{"status":99999999999999999999999}'),
    'foreign': (1, '{"id":"1","result":{"a":1},"failure":null}'),
    'array': (1, '[{"status":201}]'),
    'two_values': (2, '{"status":201},{"status":202}'),
    'no_value': (0, ''),
    'not_json': (1, '{"status":201'),
    'empty_value': (1, '{"headers":{"X-Empty":""}}'),
    'tab_value': (1, '{"headers":{"X-Tab":"a\\tb"," X":"y"}}'),
    'many_headers': (1, '{"headers":{' + ','.join('"X-%d":"%d"' % (i, i) for i in range(17)) + '}}'),
}
for k, (head, text) in envelopes.items():
    put('envelope', k, bytes([head]) + text.encode('utf-8'))

# http_head: raw request heads (and bodies), as a client sends them
heads = {
    'get': 'GET /sum HTTP/1.1\r\nHost: x\r\n\r\n',
    'post': 'POST /sum HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n[1,2]',
    'chunked': 'POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n',
    'bare_lf': 'POST /sum HTTP/1.1\nHost: x\nContent-Length: 5\n\n[1,2]',
    'empty_value': 'GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\t v\t\r\n\r\n',
    'leading_crlf': '\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'http10': 'GET / HTTP/1.0\r\n\r\n',
    'query': 'GET /a?b=1&c&d=%20 HTTP/1.1\r\nHost: x\r\n\r\n',
    'two_cl': 'POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 41\r\n\r\n[1]',
    'cl_te': 'POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n',
    'space_colon': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
    'tab_colon': 'POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length\t: 3\r\n\r\n[1]',
    'fold_sp': 'POST /rec HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 3\r\n\r\n[1]',
    'fold_tab': 'POST /rec HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n[1]',
    'bare_cr': 'POST /rec HTTP/1.1\r\nHost: x\r\nX-A: a\rContent-Length: 40\r\nContent-Length: 3\r\n\r\n[1]',
    'bare_cr_line': 'POST /rec\rX HTTP/1.1\r\nHost: x\r\n\r\n',
    'te_gzip': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n[1]',
    'te_list': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    'te_param': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;\r\n\r\n0\r\n\r\n',
    'te_twice': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'te_case': 'POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD \r\n\r\n0\r\n\r\n',
    'ctl_value': 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n',
    'nul_value': 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n',
    'bad_cl': 'POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n[1]',
    'pipelined': 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'colon_line': 'POST /rec HTTP/1.1\r\nHost: x\r\n:x\r\nContent-Length: 3\r\n\r\n[1]',
    'nul_line': 'GET / HTTP/1.1\r\nHost: x\r\n\x00\r\nContent-Length: 3\r\n\r\n[1]',
    'nul_path': 'GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n',
    'two_spaces': 'GET  /a HTTP/1.1\r\nHost: x\r\n\r\n',
    'space_in_path': 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n',
    'big_headers': 'GET / HTTP/1.1\r\nHost: x\r\n' + ''.join('X-H%d: %s\r\n' % (i, 'v' * 90) for i in range(60)) + '\r\n',
}
for k, v in heads.items():
    put('http_head', k, v)
