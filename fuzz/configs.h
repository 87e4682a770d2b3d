/*
 * configs: valid configs the structure-aware targets start from. ROUTES is
 * the route target's fixed config: every kind of segment, method and slot
 * conversion, with precedence cases (literal / :param / *rest, exact
 * method / "*"), and every template form (spreads, optional members,
 * whole sources, $jwt, $client.ip, $$, a route without `data`), and every
 * reply mode (envelope included). The others follow config/examples/.
 */
#ifndef PG_FUZZ_CONFIGS_H
#define PG_FUZZ_CONFIGS_H

#define FUZZ_CONFIG_ROUTES \
"{\"listen\":\"127.0.0.1:8080\",\n" \
" \"services\":{\"app\":{\"endpoints\":[\"127.0.0.1:3000\"]},\n" \
"   \"files\":{\"endpoints\":[\"127.0.0.1:3001\",\"[::1]:3001\"],\"connect\":\"lazy\"}},\n" \
" \"routes\":[\n" \
"  {\"method\":\"GET\",\"path\":\"/healthz2\",\"service\":\"app\",\"pattern\":\"health\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/users/:id\",\"service\":\"app\",\"pattern\":{\"cmd\":\"user.get\"},\n" \
"   \"data\":{\"id\":\"$path.id:int\",\"full\":\"$query.full:bool\",\"tenant\":\"$header.X-Tenant\"}},\n" \
"  {\"method\":\"DELETE\",\"path\":\"/users/:id\",\"service\":\"app\",\"pattern\":\"user.delete\",\"data\":\"$path.id\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/users/me\",\"service\":\"app\",\"pattern\":\"me\",\"data\":{\"me\":true,\"n\":[1,2.5,\"x\"]}},\n" \
"  {\"method\":\"POST\",\"path\":\"/users\",\"service\":\"app\",\"pattern\":\"user_created\",\"kind\":\"emit\"},\n" \
"  {\"method\":\"PUT\",\"path\":\"/files/*path\",\"service\":\"files\",\"pattern\":{\"cmd\":\"file.put\"},\n" \
"   \"data\":{\"path\":\"$path.path\",\"content\":\"$body\",\"size\":\"$body.meta.size:number\"}},\n" \
"  {\"method\":\"DELETE\",\"path\":\"/files/*path\",\"service\":\"files\",\"pattern\":\"file.delete\",\"data\":[\"$path.path\"]},\n" \
"  {\"method\":\"GET\",\"path\":\"/files/:name/raw\",\"service\":\"files\",\"pattern\":\"file.raw\",\n" \
"   \"data\":{\"name\":\"$path.name\",\"q\":\"$query.q:json\",\"len\":\"$header.content-length:int\"}},\n" \
"  {\"method\":\"*\",\"path\":\"/any/:x/*rest\",\"service\":\"app\",\"pattern\":[\"any\"],\n" \
"   \"data\":[\"$path.x\",\"$path.rest:json\",\"$body.a:int\",\"$body.b.c:json\",\"$body.d:bool\",\"$body.e\"]},\n" \
"  {\"method\":\"PATCH\",\"path\":\"/a/:x/c\",\"service\":\"app\",\"pattern\":\"axc\",\"data\":{\"x\":\"$path.x:number\"}},\n" \
"  {\"method\":\"PATCH\",\"path\":\"/a/b/:y\",\"service\":\"app\",\"pattern\":\"aby\",\"data\":{\"y\":\"$path.y:bool\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/events/:type\",\"service\":\"app\",\"kind\":\"emit\",\"pattern\":\"event\",\n" \
"   \"data\":{\"type\":\"$path.type\",\"payload\":\"$body\",\"q\":\"$query.q\",\"count\":\"$header.x-count:int\",\"h\":\"$header.x-h:json\"}},\n" \
"  {\"method\":\"GET\",\"path\":\"/caf%C3%A9/%2F/:p\",\"service\":\"app\",\"pattern\":\"encoded\",\"data\":\"$path.p:json\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/\xc3\xbcn\xc3\xaf/:x\",\"service\":\"app\",\"pattern\":\"raw-utf8\",\"data\":\"$path.x\"},\n" \
"  {\"method\":\"*\",\"path\":\"/\",\"service\":\"app\",\"pattern\":\"root\",\"data\":null},\n" \
"  {\"method\":\"GET\",\"path\":\"/orders\",\"service\":\"app\",\"pattern\":{\"cmd\":\"order.list\"},\"reply\":\"ndjson\",\n" \
"   \"data\":{\"page\":\"$query.page:int\",\"filter\":\"$query.filter:json\",\"price\":\"$query.p:number\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/orders/:id/items/:item\",\"service\":\"app\",\"pattern\":\"items\",\n" \
"   \"data\":{\"all\":\"$body.items\",\"id\":\"$path.id:int\",\"item\":\"$path.item\",\"n\":\"$body.n:number\",\"s\":\"$body.s:int\"}},\n" \
"  {\"method\":\"GET\",\"path\":\"/any/fixed/*rest\",\"service\":\"app\",\"pattern\":\"fixed\",\"data\":\"$body.x.y.z\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/orders/:id\",\"service\":\"app\",\"pattern\":\"order.get\",\"data\":\"$query.x\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/ticks\",\"service\":\"app\",\"pattern\":\"ticks\",\"reply\":\"sse\",\"timeout_ms\":60000,\"status\":203},\n" \
"  {\"method\":\"PATCH\",\"path\":\"/books/:id\",\"service\":\"app\",\"pattern\":{\"cmd\":\"book.update\"},\n" \
"   \"data\":{\"...\":\"$body\",\"id\":\"$path.id:int\",\"title\":\"$body.title?\",\"q\":\"$query.q?\"}},\n" \
"  {\"method\":\"DELETE\",\"path\":\"/books/:id\",\"service\":\"app\",\"pattern\":\"book.delete\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/books/:id\",\"service\":\"app\",\"pattern\":\"book.get\",\"reply\":\"envelope\",\n" \
"   \"data\":{\"id\":\"$path.id:int\"}},\n" \
"  {\"method\":\"GET\",\"path\":\"/search\",\"service\":\"app\",\"pattern\":\"search\",\n" \
"   \"data\":{\"...\":[\"$query\",\"$jwt\",\"$query.f:json?\"],\"limit\":\"$query.limit:int?\",\"h\":\"$headers\",\"ip\":\"$client.ip\",\n" \
"    \"p\":\"$path\",\"sub\":\"$jwt.sub?\",\"org\":\"$jwt.claims.org.id:int?\",\"all\":[\"$jwt\",\"$jwt.roles?\"],\"lit\":\"$$x\",\n" \
"    \"x\":\"$header.x-a\",\"n\":{\"...\":\"$header.x-h:json\",\"k\":\"$header.x-k?\"}}},\n" \
"  {\"method\":\"POST\",\"path\":\"/forms/:kind\",\"service\":\"app\",\"pattern\":\"form\",\n" \
"   \"data\":{\"kind\":\"$path.kind\",\"all\":\"$body\",\"f\":\"$body.f:int?\",\"p\":\"$path\",\n" \
"    \"nested\":{\"...\":[\"$body.meta:json?\",\"$body.o\"],\"k\":[\"$body.k?\"],\"deep\":{\"d\":\"$body.o.d?\"}}}}\n" \
" ]}"

#define FUZZ_CONFIG_INGRESS \
"{\"listen\":\"0.0.0.0:${PG_PORT:-8080}\",\"admin_listen\":\"0.0.0.0:9901\",\"workers\":\"auto\",\n" \
" \"generic_api\":false,\"auth\":{\"bearer_tokens\":[\"${API_TOKEN:-dev-only-token}\"]},\n" \
" \"log\":{\"level\":\"${PG_LOG_LEVEL:-info}\",\"access\":true},\"limits\":{\"max_body_bytes\":262144},\n" \
" \"services\":{\"app\":{\"endpoints\":[\"127.0.0.1:3000\"],\"timeout_ms\":10000}},\n" \
" \"routes\":[\n" \
"  {\"method\":\"GET\",\"path\":\"/healthz\",\"service\":\"app\",\"pattern\":\"health\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/orders/:id\",\"service\":\"app\",\"pattern\":{\"cmd\":\"order.get\"},\n" \
"   \"data\":{\"id\":\"$path.id\",\"tenant\":\"$header.X-Tenant\",\"expand\":\"$query.expand:bool\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/orders\",\"service\":\"app\",\"pattern\":{\"cmd\":\"order.create\"},\"status\":201,\n" \
"   \"data\":{\"order\":\"$body\",\"requestedBy\":\"$header.X-User\"}},\n" \
"  {\"method\":\"PUT\",\"path\":\"/files/*path\",\"service\":\"app\",\"pattern\":{\"cmd\":\"file.put\"},\n" \
"   \"data\":{\"path\":\"$path.path\",\"content\":\"$body\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/events/:type\",\"service\":\"app\",\"kind\":\"emit\",\"pattern\":\"event\",\n" \
"   \"data\":{\"type\":\"$path.type\",\"payload\":\"$body\"}}]}"

#define FUZZ_CONFIG_SPEC \
"{\"listen\":\"${PG_LISTEN:-127.0.0.1:8080}\",\"admin_listen\":\"${PG_ADMIN_LISTEN:-0.0.0.0:9901}\",\n" \
" \"workers\":1,\"shutdown_grace_ms\":10000,\"generic_api\":[\"math\"],\n" \
" \"auth\":{\"bearer_tokens\":[\"${GATEWAY_TOKEN}\"]},\"log\":{\"level\":\"${PG_LOG_LEVEL:-info}\",\"access\":true},\n" \
" \"limits\":{\"max_body_bytes\":1048576,\"max_connections\":4096,\"max_inflight\":10000,\"idle_timeout_ms\":60000},\n" \
" \"services\":{\n" \
"  \"math\":{\"endpoints\":[\"${MATH_ADDRESS:-127.0.0.1:3001}\"],\"pool_size\":2,\n" \
"   \"tls\":{\"ca\":\"ca.pem\",\"cert\":\"c.pem\",\"key\":\"k.pem\",\"servername\":\"math.internal\"}},\n" \
"  \"users\":{\"endpoints\":[\"users.default.svc:3000\",\"10.0.0.7:3000\"]},\n" \
"  \"time\":{\"endpoints\":[\"127.0.0.1:3002\"],\"connect\":\"lazy\"}},\n" \
" \"routes\":[\n" \
"  {\"method\":\"POST\",\"path\":\"/math/sum\",\"service\":\"math\",\"pattern\":{\"cmd\":\"sum\"},\"data\":\"$body\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/users/:id\",\"service\":\"users\",\"pattern\":\"get_user\",\n" \
"   \"data\":{\"id\":\"$path.id:int\",\"full\":\"$query.full:bool\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/users\",\"service\":\"users\",\"pattern\":\"user_created\",\"kind\":\"emit\"},\n" \
"  {\"method\":\"GET\",\"path\":\"/ticks\",\"service\":\"time\",\"pattern\":\"ticks\",\"reply\":\"sse\",\"timeout_ms\":60000}]}"

#define FUZZ_CONFIG_EGRESS \
"{\"listen\":\"127.0.0.1:${PG_PORT:-8080}\",\"log\":{\"level\":\"info\",\"access\":false},\n" \
" \"services\":{\n" \
"  \"orders\":{\"endpoints\":[\"${ORDERS_HOST:-orders.default.svc}:3000\"],\"pool_size\":4,\"timeout_ms\":3000,\n" \
"   \"retry_attempts\":5,\"retry_delay_ms\":200,\"metadata\":false,\"max_message_bytes\":65536,\"connect_timeout_ms\":500},\n" \
"  \"billing\":{\"endpoints\":[\"billing-0.billing:3000\",\"billing-1.billing:3000\"],\"connect\":\"lazy\",\n" \
"   \"tls\":{\"servername\":\"billing.internal\",\"ca\":\"/etc/ssl/certs/internal-ca.pem\",\"verify\":false}}}}"

/* The edge policy: JWT and bearer auth, CORS at the top and on a route,
 * route auth, require_claims and rate limits. */
#define FUZZ_CONFIG_EDGE \
"{\"listen\":\"0.0.0.0:8080\",\"admin_listen\":\"127.0.0.1:9901\",\"generic_api\":false,\n" \
" \"auth\":{\"bearer_tokens\":[\"${API_TOKEN}\"],\"jwt\":{\"issuer\":\"https://auth.example.com/\",\n" \
"   \"audiences\":[\"orders-api\"],\"jwks_file\":\"jwks.json\",\"algorithms\":[\"RS256\",\"ES256\",\"EdDSA\",\"HS256\"],\n" \
"   \"hs256_secret\":\"0123456789abcdef0123456789abcdef\",\"leeway_s\":30,\"forward_claims\":[\"sub\",\"tenant\"]}},\n" \
" \"cors\":{\"allow_origins\":[\"https://app.example.com\",\"http://localhost:5173\"],\"allow_headers\":[\"content-type\",\"authorization\"],\n" \
"   \"expose_headers\":[\"x-request-id\"],\"allow_credentials\":true,\"max_age_s\":600},\n" \
" \"limits\":{\"rate_limit_keys\":1000},\n" \
" \"services\":{\"app\":{\"endpoints\":[\"127.0.0.1:3000\"]}},\n" \
" \"routes\":[\n" \
"  {\"method\":\"GET\",\"path\":\"/public\",\"service\":\"app\",\"pattern\":\"p\",\"auth\":\"none\",\n" \
"   \"cors\":{\"allow_origins\":[\"*\"]},\"rate_limit\":{\"rps\":0.5,\"burst\":1,\"key\":\"$client.ip\"}},\n" \
"  {\"method\":\"POST\",\"path\":\"/orders/:id\",\"service\":\"app\",\"pattern\":\"o\",\"auth\":\"jwt\",\n" \
"   \"require_claims\":{\"scope\":\"orders:write\",\"level\":2,\"ok\":true},\n" \
"   \"rate_limit\":{\"rps\":100,\"burst\":20,\"key\":\"$jwt.sub\"}},\n" \
"  {\"method\":\"*\",\"path\":\"/keys/*rest\",\"service\":\"app\",\"pattern\":\"k\",\"auth\":\"bearer\",\n" \
"   \"rate_limit\":{\"rps\":5,\"burst\":5,\"key\":\"$header.x-api-key\"}}]}"

#endif
