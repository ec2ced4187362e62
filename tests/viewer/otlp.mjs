// otlp.mjs: check what weft exports over OTLP against the OpenTelemetry
// project's own encoder (@opentelemetry/otlp-transformer, pinned).  The
// spans weft wrote are rebuilt as SDK spans and encoded by the project's
// serializers: its JSON must be identical to weft's OTLP/JSON, and its
// protobuf byte for byte identical to weft's protobuf (so weft's message
// decodes, field by field, as the project's definitions say).
//
//   node otlp.mjs FILE            check an OTLP/JSON export request
//   node otlp.mjs collect OUT (--fd N | --port-file F)
//       an OTLP/HTTP collector on 127.0.0.1 (on the listening socket
//       passed as fd N, or a free port written to F): each request to
//       /v1/traces, protobuf or JSON, is checked as above and appended
//       to OUT as one JSON line {path, type, headers, ok, error?,
//       request} (request in the OTLP/JSON form).
import { readFileSync, appendFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import assert from 'node:assert/strict';
import { JsonTraceSerializer, ProtobufTraceSerializer } from
  '@opentelemetry/otlp-transformer';

const value = v => {
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return v.arrayValue.values.map(value);
  throw new Error('unexpected value ' + JSON.stringify(v));
};
const attrs = list => {
  const o = {};
  for (const a of list) {
    assert.ok(!(a.key in o), 'duplicate attribute ' + a.key);
    o[a.key] = value(a.value);
  }
  return o;
};
const hr = ns => {
  const n = BigInt(ns);
  return [Number(n / 1000000000n), Number(n % 1000000000n)];
};

// The request's spans as the SDK's ReadableSpans.
function sdkSpans(req) {
  const spans = [];
  for (const rs of req.resourceSpans) {
    const resource = { attributes: attrs(rs.resource.attributes),
      schemaUrl: rs.schemaUrl };
    for (const ss of rs.scopeSpans) {
      const scope = { name: ss.scope.name, version: ss.scope.version,
        schemaUrl: ss.schemaUrl };
      for (const s of ss.spans) {
        assert.match(s.traceId, /^[0-9a-f]{32}$/);
        assert.match(s.spanId, /^[0-9a-f]{16}$/);
        spans.push({
          name: s.name, kind: s.kind - 1,
          spanContext: () => ({ traceId: s.traceId, spanId: s.spanId,
            traceFlags: 1 }),
          parentSpanContext: s.parentSpanId ?
            { traceId: s.traceId, spanId: s.parentSpanId, traceFlags: 1 } :
            undefined,
          startTime: hr(s.startTimeUnixNano), endTime: hr(s.endTimeUnixNano),
          attributes: attrs(s.attributes), droppedAttributesCount: 0,
          events: [], droppedEventsCount: 0, links: [],
          droppedLinksCount: 0, status: s.status, resource,
          instrumentationScope: scope,
        });
      }
    }
  }
  return spans;
}

// The JSON request must be what the project's JSON encoder gives.
function checkJson(req) {
  const spans = sdkSpans(req);
  const theirs = JSON.parse(new TextDecoder().decode(
    JsonTraceSerializer.serializeRequest(spans)));
  assert.deepStrictEqual(req, theirs);
  return spans;
}

// A protobuf reader of the wire format (field numbers below are those of
// opentelemetry-proto; the byte-for-byte check against the project's
// encoder afterwards is what proves them).
function fields(buf) {
  const out = [];
  let pos = 0;
  const varint = () => {
    let r = 0n, shift = 0n;
    for (;;) {
      assert.ok(pos < buf.length, 'truncated varint');
      const b = buf[pos++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const f = tag >>> 3, wt = tag & 7;
    let v;
    if (wt === 0) v = varint();
    else if (wt === 1) { v = buf.readBigUInt64LE(pos); pos += 8; }
    else if (wt === 5) { v = buf.readUInt32LE(pos); pos += 4; }
    else if (wt === 2) {
      const n = Number(varint());
      v = buf.subarray(pos, pos + n); pos += n;
      assert.ok(pos <= buf.length, 'truncated field ' + f);
    } else throw new Error('wire type ' + wt);
    out.push([f, v]);
  }
  return out;
}
const str = b => b.toString('utf8');
const hex = b => b.toString('hex');
function anyValue(buf) {
  for (const [f, v] of fields(buf)) {
    if (f === 1) return { stringValue: str(v) };
    if (f === 2) return { boolValue: v !== 0n };
    if (f === 3) return { intValue: Number(BigInt.asIntN(64, v)) };
    if (f === 4) {
      const b = Buffer.alloc(8); b.writeBigUInt64LE(v);
      return { doubleValue: b.readDoubleLE(0) };
    }
    if (f === 5) return { arrayValue: { values:
      fields(v).filter(([g]) => g === 1).map(([, x]) => anyValue(x)) } };
  }
  throw new Error('empty AnyValue');
}
const keyValue = buf => {
  const kv = {};
  for (const [f, v] of fields(buf)) {
    if (f === 1) kv.key = str(v);
    if (f === 2) kv.value = anyValue(v);
  }
  return kv;
};
function span(buf) {
  const s = { attributes: [], events: [], links: [] };
  for (const [f, v] of fields(buf)) {
    switch (f) {
    case 1: s.traceId = hex(v); break;
    case 2: s.spanId = hex(v); break;
    case 4: s.parentSpanId = hex(v); break;
    case 5: s.name = str(v); break;
    case 6: s.kind = Number(v); break;
    case 7: s.startTimeUnixNano = v.toString(); break;
    case 8: s.endTimeUnixNano = v.toString(); break;
    case 9: s.attributes.push(keyValue(v)); break;
    case 10: s.droppedAttributesCount = Number(v); break;
    case 12: s.droppedEventsCount = Number(v); break;
    case 14: s.droppedLinksCount = Number(v); break;
    case 15: s.status = { code: 0 };
      for (const [g, w] of fields(v)) {
        if (g === 2) s.status.message = str(w);
        if (g === 3) s.status.code = Number(w);
      }
      break;
    case 16: s.flags = v; break;
    default: throw new Error('unexpected Span field ' + f);
    }
  }
  return s;
}
function decode(buf) {
  const req = { resourceSpans: [] };
  for (const [f, rsb] of fields(buf)) {
    assert.equal(f, 1, 'ExportTraceServiceRequest.resource_spans');
    const rs = { resource: { attributes: [] }, scopeSpans: [] };
    for (const [g, v] of fields(rsb)) {
      if (g === 1)
        for (const [h, w] of fields(v))
          if (h === 1) rs.resource.attributes.push(keyValue(w));
      if (g === 3) rs.schemaUrl = str(v);
      if (g !== 2) continue;
      const ss = { scope: {}, spans: [] };
      for (const [h, w] of fields(v)) {
        if (h === 1)
          for (const [k, x] of fields(w)) {
            if (k === 1) ss.scope.name = str(x);
            if (k === 2) ss.scope.version = str(x);
          }
        if (h === 2) ss.spans.push(span(w));
        if (h === 3) ss.schemaUrl = str(w);
      }
      rs.scopeSpans.push(ss);
    }
    req.resourceSpans.push(rs);
  }
  return req;
}

// A protobuf request: decoded, and the project's encoder must give the
// very same bytes for the spans it holds.
function checkProtobuf(buf) {
  const req = decode(buf);
  const theirs = Buffer.from(ProtobufTraceSerializer.serializeRequest(
    sdkSpans(req)));
  assert.ok(theirs.equals(buf), 'weft\'s protobuf differs from the ' +
    'OpenTelemetry encoder\'s (' + buf.length + ' vs ' + theirs.length +
    ' bytes)');
  return req;
}

function collect(out, opts) {
  const srv = http.createServer((rq, rs) => {
    const chunks = [];
    rq.on('data', c => chunks.push(c));
    rq.on('end', () => {
      const body = Buffer.concat(chunks);
      const type = rq.headers['content-type'] || '';
      const rec = { path: rq.url, type, headers: rq.headers, ok: true };
      try {
        if (type === 'application/x-protobuf')
          rec.request = checkProtobuf(body);
        else if (type === 'application/json') {
          rec.request = JSON.parse(body.toString('utf8'));
          checkJson(rec.request);
        } else throw new Error('Content-Type ' + type);
      } catch (e) {
        rec.ok = false;
        rec.error = String(e.message || e).slice(0, 2000);
      }
      appendFileSync(out, JSON.stringify(rec) + '\n');
      if (type === 'application/json') {
        rs.writeHead(200, { 'Content-Type': 'application/json' });
        rs.end('{}');
      } else {
        rs.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
        rs.end();
      }
    });
  });
  if (opts.fd !== undefined)
    srv.listen({ fd: opts.fd }, () => console.log('listening'));
  else
    srv.listen(0, '127.0.0.1', () => {
      writeFileSync(opts.portFile, String(srv.address().port));
      console.log('listening');
    });
}

if (process.argv[2] === 'collect') {
  const a = process.argv;
  const opts = {};
  for (let i = 4; i < a.length; i += 2) {
    if (a[i] === '--fd') opts.fd = Number(a[i + 1]);
    if (a[i] === '--port-file') opts.portFile = a[i + 1];
  }
  collect(a[3], opts);
} else {
  const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const spans = checkJson(req);
  const pb = ProtobufTraceSerializer.serializeRequest(spans);
  assert.ok(pb && pb.length > 100, 'protobuf encoding');
  console.log(`ok - ${spans.length} spans: the same as the OpenTelemetry ` +
    `encoder gives (JSON), ${pb.length} bytes as protobuf`);
}
