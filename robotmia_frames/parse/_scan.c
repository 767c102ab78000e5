/*
 * robotmia_frames._scan: export lines to per-key columns, in C.
 *
 * One call scans a chunk of JSONL (newline-separated lines) and returns, for every
 * property key, the rows it appears in, a type tag per value and the values
 * themselves in flat buffers: int64, float64, the text of every scalar (strings
 * decoded, numbers and booleans as JSON text) with end offsets, and the raw JSON
 * text of objects and arrays. engine.py turns those into Arrow
 * arrays with a handful of vectorised calls per key. By default each key's values
 * are laid out over every row of the chunk (Arrow buffers, nulls where a row has
 * none); a sparse scan lays each key out over its own values only and hands back
 * their rows, so that a chunk of thousands of keys, a few per line, costs what
 * its values do.
 *
 * The scanner is deliberately partial: it accepts only lines it fully validates
 * and understands, and returns None for the whole chunk as soon as it meets
 * anything else (a malformed line, a non-object line, escapes in a key, a
 * duplicate key, an integer beyond int64, a float beyond double range, a lone
 * surrogate, a non-string event, deep nesting). The Python engine then handles
 * that chunk, so every decision about bad lines and odd values stays in one
 * place. The GIL is released while scanning.
 *
 * Limits (each declines the chunk, see docs/engine.md "Safety"): nesting deeper
 * than MAX_DEPTH, more than MAX_KEYS distinct property keys in one chunk, more
 * than MAX_CELLS key-by-row cells in one chunk (a sparse scan has no such
 * cells), a key-table probe longer than MAX_PROBE, and any buffer beyond 2 GiB
 * (int32 offsets).
 *
 * The module uses only the Limited API (Py_LIMITED_API, set by setup.py): one
 * abi3 build serves every later Python. Its state (the C locale, the hash key)
 * lives in the module object, and it declares that it does not need the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__) || defined(__APPLE__)
#define RF_HAVE_STRTOD_L 1
#ifdef __APPLE__
#include <xlocale.h>
#endif
#endif

enum { T_NULL = 1, T_FALSE = 2, T_TRUE = 3, T_INT = 4, T_FLOAT = 5, T_STR = 6, T_RAW = 7, T_LIST = 8 };
enum { NOT_FLAT = -3, NOT_SCALAR = -4 };
enum { OK = 0, HARD = -1, NOMEM = -2 };
#define MAX_DEPTH 256
/* Distinct stored keys in one chunk: beyond it the chunk goes to Python. */
#define MAX_KEYS 65536
/* Keys x rows of one chunk's result (its bitmaps and offsets are laid out over
   every row): 32M cells is at most ~260 MB of int64 values. */
#define MAX_CELLS ((size_t)1 << 25)
/* Slots one key lookup may visit. The hash is keyed per process, so a long
   probe means a broken hash, not hostile keys; the chunk is declined. */
#define MAX_PROBE 128

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_grow(buf_t *b, size_t extra) {
    size_t need = b->len + extra;
    if (need <= b->cap) return OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = (char *)realloc(b->p, cap);
    if (!p) return NOMEM;
    b->p = p;
    b->cap = cap;
    return OK;
}

static inline int buf_put(buf_t *b, const void *src, size_t n) {
    if (n == 0) return OK;
    if (b->len + n > b->cap && buf_grow(b, n) != OK) return NOMEM;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return OK;
}

static inline int buf_i32(buf_t *b, int32_t v) { return buf_put(b, &v, sizeof v); }

/* Bytes [from, to) of another buffer (which may still be unallocated when the
   span is empty: no pointer arithmetic on NULL). */
static inline int buf_put_span(buf_t *b, const buf_t *src, int32_t from, int32_t to) {
    if (to <= from) return OK;
    return buf_put(b, src->p + from, (size_t)(to - from));
}

/* ------------------------------------------------------------------ columns */

typedef struct {
    const char *name;
    size_t name_len;
    uint64_t hash;
    int skip;        /* not wanted (projection): validated, not stored */
    int seen;        /* appeared in this chunk */
    int odd;         /* a float whose text is not Python's repr of it */
    int raw_odd;     /* a list or object whose text is not its canonical JSON text */
    int objects;     /* holds a JSON object */
    int32_t last_row;
    int32_t next; /* the key that followed this one last time (-1: none yet) */
    buf_t rows, tags, ints, flts, soff, sdat, roff, rdat;
    /* Lists of scalars, flattened: element tags, ints, floats, string text with
       one end offset per element, and each list's end (in elements). */
    buf_t ctags, cints, cflts, coff, cdat, lend;
} col_t;

typedef struct {
    col_t *cols;
    size_t ncols, capcols;
    int32_t *slots; /* open addressing: column index + 1, 0 = empty */
    size_t nslots;
    size_t *order; /* columns in order of first appearance */
    size_t norder;
    int only_wanted;
    int32_t first; /* the first key of the last properties object (-1: none) */
    const uint64_t *key; /* the per-process hash key */
    size_t longest_probe; /* slots visited by the longest lookup so far */
} table_t;

/* SipHash-1-3 (as CPython hashes str), keyed per process: key names chosen to
   collide in the table cannot be computed without the key. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                  \
    do {                                                                          \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                 \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                    \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                    \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                 \
    } while (0)

static uint64_t hash_bytes(const uint64_t key[2], const char *s, size_t n) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
    const unsigned char *p = (const unsigned char *)s;
    size_t left = n;
    while (left >= 8) {
        uint64_t m;
        memcpy(&m, p, 8); /* little- or big-endian alike: only equality matters */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
        p += 8;
        left -= 8;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < left; i++) b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static int table_rehash(table_t *t, size_t nslots) {
    int32_t *slots = (int32_t *)calloc(nslots, sizeof(int32_t));
    if (!slots) return NOMEM;
    for (size_t i = 0; i < t->ncols; i++) {
        size_t j = (size_t)t->cols[i].hash & (nslots - 1), probe = 1;
        while (slots[j]) {
            j = (j + 1) & (nslots - 1);
            if (++probe > MAX_PROBE) { free(slots); return HARD; }
        }
        if (probe > t->longest_probe) t->longest_probe = probe;
        slots[j] = (int32_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return OK;
}

/* Find or add a key; *out is its column. */
static int table_get(table_t *t, const char *name, size_t n, int add_skip, col_t **out) {
    uint64_t h = hash_bytes(t->key, name, n);
    size_t j = (size_t)h & (t->nslots - 1), probe = 1;
    while (t->slots[j]) {
        col_t *c = &t->cols[t->slots[j] - 1];
        if (c->hash == h && c->name_len == n && memcmp(c->name, name, n) == 0) {
            *out = c;
            return OK;
        }
        j = (j + 1) & (t->nslots - 1);
        if (++probe > MAX_PROBE) return HARD;
    }
    if (probe > t->longest_probe) t->longest_probe = probe;
    if (t->ncols >= MAX_KEYS) return HARD;
    if (t->ncols == t->capcols) {
        size_t cap = t->capcols ? t->capcols * 2 : 64;
        col_t *cols = (col_t *)realloc(t->cols, cap * sizeof(col_t));
        size_t *order = (size_t *)realloc(t->order, cap * sizeof(size_t));
        if (cols) t->cols = cols;
        if (order) t->order = order;
        if (!cols || !order) return NOMEM;
        t->capcols = cap;
    }
    col_t *c = &t->cols[t->ncols];
    memset(c, 0, sizeof *c);
    c->name = name;
    c->name_len = n;
    c->hash = h;
    c->skip = add_skip;
    c->last_row = -1;
    c->next = -1;
    t->slots[j] = (int32_t)(t->ncols + 1);
    t->ncols++;
    if (t->ncols * 2 > t->nslots) {
        int r = table_rehash(t, t->nslots * 2);
        if (r != OK) return r;
    }
    *out = &t->cols[t->ncols - 1];
    return OK;
}

static void table_free(table_t *t) {
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        free(c->rows.p); free(c->tags.p); free(c->ints.p); free(c->flts.p);
        free(c->soff.p); free(c->sdat.p); free(c->roff.p); free(c->rdat.p);
        free(c->ctags.p); free(c->cints.p); free(c->cflts.p); free(c->coff.p);
        free(c->cdat.p); free(c->lend.p);
    }
    free(t->cols);
    free(t->slots);
    free(t->order);
}

/* ------------------------------------------------------------------ lexing */

/* What number parsing needs from the module state. */
typedef struct {
#ifdef RF_HAVE_STRTOD_L
    locale_t c_locale;
#endif
    int floats_ok; /* strtod reads '.' as the decimal point */
} numenv_t;

typedef struct {
    const unsigned char *p, *e;
    const numenv_t *env;
} cur_t;

static inline void ws(cur_t *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')) c->p++;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) { i++; continue; }
        if (b >= 0xC2 && b <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (b == 0xE0 && s[i + 1] < 0xA0) return 0;
            if (b == 0xED && s[i + 1] > 0x9F) return 0;
            i += 3;
        } else if (b >= 0xF0 && b <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (b == 0xF0 && s[i + 1] < 0x90) return 0;
            if (b == 0xF4 && s[i + 1] > 0x8F) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/*
 * A string at c->p (on the opening quote). The raw span between the quotes is
 * returned in s and n; escaped says whether it holds escapes. When out is given,
 * the decoded UTF-8 text is appended to it.
 */
static int lex_string(cur_t *c, const unsigned char **s, size_t *n, int *escaped, buf_t *out) {
    const unsigned char *p = ++c->p, *e = c->e;
    int high = 0, esc = 0;
    /* Eight bytes at a time while none is a quote, a backslash, a control
       character or non-ASCII. */
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ 0x2222222222222222ULL, b = w ^ 0x5C5C5C5C5C5C5C5CULL;
        uint64_t hit = ((q - 0x0101010101010101ULL) & ~q) | ((b - 0x0101010101010101ULL) & ~b) |
                       (w - 0x2020202020202020ULL) | w;
        if (hit & 0x8080808080808080ULL) break;
        p += 8;
    }
    while (p < e) {
        unsigned char ch = *p;
        if (ch == '"') break;
        if (ch == '\\') { esc = 1; p += 2; continue; }
        if (ch < 0x20) return HARD;
        high |= ch & 0x80;
        p++;
    }
    if (p >= e) return HARD;
    *s = c->p;
    *n = (size_t)(p - c->p);
    *escaped = esc;
    c->p = p + 1;
    if (!esc) {
        if (high && !valid_utf8(*s, *n)) return HARD;
        return out ? buf_put(out, *s, *n) : OK;
    }
    /* With escapes: validate (and decode) piece by piece. */
    const unsigned char *q = *s, *end = *s + *n, *run = q;
    while (q < end) {
        if (*q != '\\') { q++; continue; }
        if (high && !valid_utf8(run, (size_t)(q - run))) return HARD;
        if (out && buf_put(out, run, (size_t)(q - run)) != OK) return NOMEM;
        if (q + 1 >= end) return HARD;
        unsigned char x = q[1];
        char one = 0;
        switch (x) {
            case '"': one = '"'; break;
            case '\\': one = '\\'; break;
            case '/': one = '/'; break;
            case 'b': one = '\b'; break;
            case 'f': one = '\f'; break;
            case 'n': one = '\n'; break;
            case 'r': one = '\r'; break;
            case 't': one = '\t'; break;
            case 'u': break;
            default: return HARD;
        }
        if (x != 'u') {
            if (out && buf_put(out, &one, 1) != OK) return NOMEM;
            q += 2;
        } else {
            unsigned cp;
            if (end - q < 6 || !hex4(q + 2, &cp)) return HARD;
            q += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - q < 6 || q[0] != '\\' || q[1] != 'u' || !hex4(q + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return HARD; /* a lone surrogate: the Python path decides */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return HARD;
            }
            if (out) {
                unsigned char u[4];
                size_t k;
                if (cp < 0x80) { u[0] = (unsigned char)cp; k = 1; }
                else if (cp < 0x800) {
                    u[0] = (unsigned char)(0xC0 | (cp >> 6));
                    u[1] = (unsigned char)(0x80 | (cp & 0x3F)); k = 2;
                } else if (cp < 0x10000) {
                    u[0] = (unsigned char)(0xE0 | (cp >> 12));
                    u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    u[2] = (unsigned char)(0x80 | (cp & 0x3F)); k = 3;
                } else {
                    u[0] = (unsigned char)(0xF0 | (cp >> 18));
                    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    u[3] = (unsigned char)(0x80 | (cp & 0x3F)); k = 4;
                }
                if (buf_put(out, u, k) != OK) return NOMEM;
            }
        }
        run = q;
    }
    if (high && !valid_utf8(run, (size_t)(end - run))) return HARD;
    if (out && buf_put(out, run, (size_t)(end - run)) != OK) return NOMEM;
    return OK;
}

/* A JSON number at c->p: *is_int, and *iv or *dv. Anything out of range is HARD. */
static int lex_number(cur_t *c, int *is_int, int64_t *iv, double *dv) {
    const unsigned char *start = c->p, *p = c->p, *e = c->e;
    int neg = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e) return HARD;
    const unsigned char *digits = p;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (p < e && *p >= '0' && *p <= '9') p++; }
    else return HARD;
    size_t ndig = (size_t)(p - digits);
    int isint = 1;
    if (p < e && *p == '.') {
        isint = 0;
        p++;
        if (p >= e || *p < '0' || *p > '9') return HARD;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        isint = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return HARD;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    c->p = p;
    *is_int = isint;
    if (isint) {
        if (ndig > 19) return HARD;
        uint64_t u = 0;
        for (const unsigned char *d = digits; d < digits + ndig; d++) {
            unsigned v = (unsigned)(*d - '0');
            if (u > (UINT64_MAX - v) / 10) return HARD;
            u = u * 10 + v;
        }
        if (neg) {
            if (u > (uint64_t)INT64_MAX + 1) return HARD;
            *iv = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        } else {
            if (u > (uint64_t)INT64_MAX) return HARD;
            *iv = (int64_t)u;
        }
        return OK;
    }
#if !defined(__FLT_EVAL_METHOD__) || __FLT_EVAL_METHOD__ == 0
    {
        /* Exact fast path: at most 15 significant digits and a power of ten up
           to 1e22 are both exact doubles, and one IEEE multiply or divide
           rounds correctly. */
        static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        const unsigned char *d = digits;
        uint64_t m = 0;
        int nd = 0, frac = 0, ok = 1;
        while (d < p && *d >= '0' && *d <= '9') { m = m * 10 + (unsigned)(*d - '0'); nd++; d++; }
        if (d < p && *d == '.') {
            d++;
            while (d < p && *d >= '0' && *d <= '9') {
                m = m * 10 + (unsigned)(*d - '0'); nd++; frac++; d++;
                if (nd > 15) { ok = 0; break; }
            }
        }
        long ex = 0;
        if (ok && d < p && (*d == 'e' || *d == 'E')) {
            int eneg = 0;
            d++;
            if (*d == '+' || *d == '-') { eneg = *d == '-'; d++; }
            while (d < p && ex < 100000) { ex = ex * 10 + (*d - '0'); d++; }
            if (eneg) ex = -ex;
        }
        if (ok && nd <= 15) {
            ex -= frac;
            if (ex >= -22 && ex <= 22 && m != 0) {
                double v = (double)m;
                v = ex < 0 ? v / pow10[-ex] : v * pow10[ex];
                *dv = neg ? -v : v;
                return OK;
            }
        }
    }
#endif
    if (!c->env->floats_ok) return HARD;
    char tmp[128];
    size_t len = (size_t)(p - start);
    if (len >= sizeof tmp) return HARD;
    memcpy(tmp, start, len);
    tmp[len] = 0;
    char *endp;
    errno = 0;
#ifdef RF_HAVE_STRTOD_L
    double d = strtod_l(tmp, &endp, c->env->c_locale);
#else
    double d = strtod(tmp, &endp);
#endif
    if (endp != tmp + len) return HARD;
    if (d == HUGE_VAL || d == -HUGE_VAL) return HARD;
    *dv = d;
    return OK;
}

static int lit(cur_t *c, const char *word, size_t n) {
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, word, n) != 0) return HARD;
    c->p += n;
    return OK;
}

/* An object member's key and its ':', c->p then at the value (HARD at the end of
   the line). With `plain`, an escaped key is HARD: keys matched by their bytes go
   to the Python path when escaped (rare). */
static int lex_key(cur_t *c, const unsigned char **s, size_t *n, int plain) {
    int r, esc;
    if (c->p >= c->e || *c->p != '"') return HARD;
    if ((r = lex_string(c, s, n, &esc, NULL)) != OK) return r;
    if (plain && esc) return HARD;
    ws(c);
    if (c->p >= c->e || *c->p != ':') return HARD;
    c->p++;
    ws(c);
    return c->p < c->e ? OK : HARD;
}

enum { MORE = 1 };

/* After an object member's value: MORE past a ',' (another member follows), OK
   past the object's closing '}', else HARD. */
static int next_member(cur_t *c) {
    ws(c);
    if (c->p >= c->e) return HARD;
    if (*c->p == ',') { c->p++; ws(c); return MORE; }
    if (*c->p == '}') { c->p++; return OK; }
    return HARD;
}

/* Validate any JSON value and step over it. */
static int skip_value(cur_t *c, int depth) {
    if (c->p >= c->e) return HARD;
    const unsigned char *s;
    size_t n;
    int esc, r;
    switch (*c->p) {
        case '"': return lex_string(c, &s, &n, &esc, NULL);
        case 't': return lit(c, "true", 4);
        case 'f': return lit(c, "false", 5);
        case 'n': return lit(c, "null", 4);
        case '[': {
            if (depth >= MAX_DEPTH) return HARD;
            c->p++;
            ws(c);
            if (c->p < c->e && *c->p == ']') { c->p++; return OK; }
            for (;;) {
                if ((r = skip_value(c, depth + 1)) != OK) return r;
                ws(c);
                if (c->p >= c->e) return HARD;
                if (*c->p == ',') { c->p++; ws(c); continue; }
                if (*c->p == ']') { c->p++; return OK; }
                return HARD;
            }
        }
        case '{': {
            if (depth >= MAX_DEPTH) return HARD;
            c->p++;
            ws(c);
            if (c->p < c->e && *c->p == '}') { c->p++; return OK; }
            for (;;) {
                if ((r = lex_key(c, &s, &n, 0)) != OK) return r;
                if ((r = skip_value(c, depth + 1)) != OK) return r;
                if ((r = next_member(c)) != MORE) return r;
            }
        }
        default: {
            int is_int;
            int64_t iv;
            double dv;
            /* Raw numbers inside objects and lists are parsed again in Python,
               which reads big integers exactly, so only the grammar matters. */
            const unsigned char *save = c->p;
            r = lex_number(c, &is_int, &iv, &dv);
            if (r == HARD && c->p != save) return OK; /* well-formed, out of range */
            return r;
        }
    }
}

/*
 * Is this JSON float spelled as Python's repr spells its value? True for plain
 * decimals (no exponent) of at most 15 significant digits, no trailing zero after
 * the first decimal and a magnitude from 1e-4 up, the form repr uses there: such
 * a decimal is the shortest one that reads back as its double.
 */
static int float_canonical(const unsigned char *s, size_t n) {
    const unsigned char *p = s, *e = s + n, *dot = NULL;
    if (p < e && *p == '-') p++;
    for (const unsigned char *q = p; q < e; q++) {
        if (*q == '.') dot = q;
        else if (*q == 'e' || *q == 'E') return 0;
    }
    if (!dot) return 0;
    size_t ilen = (size_t)(dot - p), flen = (size_t)(e - dot - 1);
    if (flen > 1 && e[-1] == '0') return 0;
    if (ilen == 1 && *p == '0') {
        size_t z = 0;
        while (z < flen && dot[1 + z] == '0') z++;
        if (z == flen) return 1; /* 0.0 */
        return z <= 3 && flen - z <= 15;
    }
    return ilen + flen <= 15;
}

/*
 * A scalar at c->p into ints/floats, its text into `text`: strings decoded, and
 * with `all_text` also booleans and numbers as JSON text ("-0" as "0"), so a
 * column of mixed scalars is its own text column. `odd` (if given) is set by a
 * float not spelled as repr spells it. NOT_SCALAR, consuming nothing, at a list
 * or an object.
 */
static int put_scalar(cur_t *c, buf_t *ints, buf_t *flts, buf_t *text, int all_text, int *odd,
                      unsigned char *tag) {
    const unsigned char *s;
    size_t n;
    int esc, r;
    if (c->p >= c->e) return HARD;
    switch (*c->p) {
        case '"':
            *tag = T_STR;
            return lex_string(c, &s, &n, &esc, text);
        case 't':
            *tag = T_TRUE;
            if ((r = lit(c, "true", 4)) != OK) return r;
            return all_text ? buf_put(text, "true", 4) : OK;
        case 'f':
            *tag = T_FALSE;
            if ((r = lit(c, "false", 5)) != OK) return r;
            return all_text ? buf_put(text, "false", 5) : OK;
        case 'n':
            *tag = T_NULL;
            return lit(c, "null", 4);
        case '[':
        case '{':
            return NOT_SCALAR;
        default: {
            int is_int;
            int64_t iv;
            double dv;
            const unsigned char *start = c->p;
            if ((r = lex_number(c, &is_int, &iv, &dv)) != OK) return r;
            size_t len = (size_t)(c->p - start);
            if (is_int) {
                if (buf_put(ints, &iv, sizeof iv) != OK) return NOMEM;
                if (iv == 0) { start = (const unsigned char *)"0"; len = 1; } /* -0 */
                *tag = T_INT;
            } else {
                if (buf_put(flts, &dv, sizeof dv) != OK) return NOMEM;
                if (odd && !*odd && !float_canonical(start, len)) *odd = 1;
                *tag = T_FLOAT;
            }
            return all_text ? buf_put(text, start, len) : OK;
        }
    }
}

/* A list whose elements are all scalars, into the column's element buffers.
   NOT_FLAT (nothing kept) for a list holding lists or objects. */
static int put_flat_list(cur_t *c, col_t *col) {
    size_t m_tags = col->ctags.len, m_ints = col->cints.len, m_flts = col->cflts.len,
           m_off = col->coff.len, m_dat = col->cdat.len;
    int r;
    c->p++; /* '[' */
    ws(c);
    if (c->p < c->e && *c->p == ']') {
        c->p++;
    } else {
        for (;;) {
            unsigned char tag;
            r = put_scalar(c, &col->cints, &col->cflts, &col->cdat, 0, NULL, &tag);
            if (r == NOT_SCALAR) {
                col->ctags.len = m_tags; col->cints.len = m_ints; col->cflts.len = m_flts;
                col->coff.len = m_off; col->cdat.len = m_dat;
                return NOT_FLAT;
            }
            if (r != OK) return r;
            if (col->cdat.len > INT32_MAX || col->ctags.len >= INT32_MAX) return HARD;
            if (buf_i32(&col->coff, (int32_t)col->cdat.len) != OK) return NOMEM;
            if (buf_put(&col->ctags, &tag, 1) != OK) return NOMEM;
            ws(c);
            if (c->p >= c->e) return HARD;
            if (*c->p == ',') { c->p++; ws(c); continue; }
            if (*c->p == ']') { c->p++; break; }
            return HARD;
        }
    }
    return buf_i32(&col->lend, (int32_t)col->ctags.len);
}

/*
 * Is this (valid) list or object text already what json_text writes for its
 * parsed value: compact, no escapes, every number as Python spells it (no "-0",
 * floats in repr's form) and no key twice in one object? Conservative: anything
 * unusual (escapes, more than 64 keys open) says no, and Python writes the text.
 */
static int canonical_span(const unsigned char *s, size_t n) {
    struct { int depth; const unsigned char *k; size_t len; } keys[64];
    int nkeys = 0, depth = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char ch = s[i];
        if (ch == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') {
                if (s[j] == '\\') return 0;
                j++;
            }
            if (j + 1 < n && s[j + 1] == ':') { /* a key */
                for (int q = nkeys - 1; q >= 0 && keys[q].depth == depth; q--)
                    if (keys[q].len == j - i - 1 && memcmp(keys[q].k, s + i + 1, j - i - 1) == 0)
                        return 0;
                if (nkeys == 64) return 0;
                keys[nkeys].depth = depth;
                keys[nkeys].k = s + i + 1;
                keys[nkeys].len = j - i - 1;
                nkeys++;
            }
            i = j + 1;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') return 0;
        if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j = i;
            int isfloat = 0;
            while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '+' ||
                             s[j] == '.' || s[j] == 'e' || s[j] == 'E')) {
                if (s[j] == '.' || s[j] == 'e' || s[j] == 'E') isfloat = 1;
                j++;
            }
            if (isfloat ? !float_canonical(s + i, j - i) : (j - i == 2 && s[i] == '-' && s[i + 1] == '0'))
                return 0;
            i = j;
            continue;
        }
        if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') {
            while (nkeys > 0 && keys[nkeys - 1].depth == depth) nkeys--;
            depth--;
        }
        i++;
    }
    return 1;
}

/*
 * One property value into its column. Every scalar also leaves its text in sdat
 * (strings decoded, numbers and booleans as their JSON text, nulls empty), one
 * end offset per value, so a column of mixed scalars is already its text column.
 */
static int put_value(cur_t *c, col_t *col, int32_t row) {
    int r;
    unsigned char tag;
    r = put_scalar(c, &col->ints, &col->flts, &col->sdat, 1, &col->odd, &tag);
    if (r == NOT_SCALAR) {
        /* The raw text is kept for every list and object; lists of scalars are
           also flattened, so most list columns need no Python. */
        const unsigned char *start = c->p;
        tag = T_RAW;
        if (*c->p == '[') {
            r = put_flat_list(c, col);
            if (r == OK) tag = T_LIST;
            else if (r != NOT_FLAT) return r;
            else c->p = start;
        }
        if (tag == T_RAW && (r = skip_value(c, 1)) != OK) return r;
        if (*start == '{') col->objects = 1;
        /* Whether its text (kept in rdat) can serve as is if the column turns
           out to be text (objects, or lists mixed with other values). */
        if (!col->raw_odd && !canonical_span(start, (size_t)(c->p - start))) col->raw_odd = 1;
        if (buf_put(&col->rdat, start, (size_t)(c->p - start)) != OK) return NOMEM;
        if (col->rdat.len > INT32_MAX) return HARD;
        if (buf_i32(&col->roff, (int32_t)col->rdat.len) != OK) return NOMEM;
    } else if (r != OK) {
        return r;
    }
    if (col->sdat.len > INT32_MAX) return HARD;
    if (buf_i32(&col->soff, (int32_t)col->sdat.len) != OK) return NOMEM;
    if (buf_i32(&col->rows, row) != OK || buf_put(&col->tags, &tag, 1) != OK) return NOMEM;
    return OK;
}

/* The properties object of one line. */
static int scan_properties(cur_t *c, table_t *t, int32_t row, double *time, uint8_t *time_ok) {
    int r, seen_time = 0;
    int32_t prev = -1;
    const unsigned char *s;
    size_t n;
    c->p++; /* '{' */
    ws(c);
    if (c->p < c->e && *c->p == '}') { c->p++; return OK; }
    for (;;) {
        if ((r = lex_key(c, &s, &n, 1)) != OK) return r;
        if (n == 4 && memcmp(s, "time", 4) == 0) {
            if (seen_time) return HARD;
            seen_time = 1;
            unsigned char ch = *c->p;
            if (ch == '-' || (ch >= '0' && ch <= '9')) {
                int is_int;
                int64_t iv;
                double dv;
                if ((r = lex_number(c, &is_int, &iv, &dv)) != OK) return r;
                if (is_int) {
                    if (iv > 9007199254740992LL || iv < -9007199254740992LL) return HARD;
                    dv = (double)iv;
                }
                *time = dv;
                *time_ok = 1;
            } else if ((r = skip_value(c, 1)) != OK) {
                return r;
            }
        } else {
            /* Events of one name repeat their keys in the same order: try the key
               that followed the previous one last time before hashing. */
            col_t *col = NULL;
            int32_t guess = prev < 0 ? t->first : t->cols[prev].next;
            if (guess >= 0) {
                col_t *g = &t->cols[guess];
                if (g->name_len == n && memcmp(g->name, s, n) == 0) col = g;
            }
            if (!col) {
                if ((r = table_get(t, (const char *)s, n, t->only_wanted, &col)) != OK) return r;
                if (prev < 0) t->first = (int32_t)(col - t->cols);
                else t->cols[prev].next = (int32_t)(col - t->cols);
            }
            prev = (int32_t)(col - t->cols);
            if (col->last_row == row) return HARD; /* duplicate key: the Python path */
            col->last_row = row;
            if (!col->seen) {
                col->seen = 1;
                if (!col->skip) t->order[t->norder++] = (size_t)(col - t->cols);
            }
            if (col->skip) r = skip_value(c, 1);
            else r = put_value(c, col, row);
            if (r != OK) return r;
        }
        if ((r = next_member(c)) != MORE) return r;
    }
}

typedef struct {
    buf_t ev_off, ev_dat, ev_ok, time, time_ok;
} rows_t;

static int scan_line(cur_t *c, table_t *t, rows_t *o, int32_t row) {
    int r, seen_event = 0, seen_props = 0;
    const unsigned char *s;
    size_t n;
    double time = 0.0;
    uint8_t time_ok = 0, ev_ok = 0;
    ws(c);
    if (c->p >= c->e || *c->p != '{') return HARD;
    c->p++;
    ws(c);
    if (c->p < c->e && *c->p == '}') {
        c->p++;
    } else {
        for (;;) {
            if ((r = lex_key(c, &s, &n, 1)) != OK) return r;
            if (n == 5 && memcmp(s, "event", 5) == 0) {
                if (seen_event) return HARD;
                seen_event = 1;
                if (*c->p == '"') {
                    const unsigned char *es;
                    size_t en;
                    int eesc;
                    if ((r = lex_string(c, &es, &en, &eesc, &o->ev_dat)) != OK) return r;
                    ev_ok = 1;
                } else if ((r = lit(c, "null", 4)) != OK) {
                    return r; /* a non-string event: the Python path spells it */
                }
            } else if (n == 10 && memcmp(s, "properties", 10) == 0) {
                if (seen_props) return HARD;
                seen_props = 1;
                if (*c->p == '{') {
                    if ((r = scan_properties(c, t, row, &time, &time_ok)) != OK) return r;
                } else if ((r = lit(c, "null", 4)) != OK) {
                    return r;
                }
            } else if ((r = skip_value(c, 1)) != OK) {
                return r;
            }
            if ((r = next_member(c)) == OK) break;
            if (r != MORE) return r;
        }
    }
    ws(c);
    if (c->p != c->e) return HARD;
    if (o->ev_dat.len > INT32_MAX) return HARD;
    if (buf_i32(&o->ev_off, (int32_t)o->ev_dat.len) != OK) return NOMEM;
    if (buf_put(&o->ev_ok, &ev_ok, 1) != OK) return NOMEM;
    if (buf_put(&o->time, &time, sizeof time) != OK) return NOMEM;
    if (buf_put(&o->time_ok, &time_ok, 1) != OK) return NOMEM;
    return OK;
}

static int blank(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (!(ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == 0x0b || ch == 0x0c))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ Python */

typedef struct {
    PyObject *buffer_type; /* robotmia_frames._scan.Buffer */
    numenv_t env;
    uint64_t key[2]; /* the hash key, random per process */
} state_t;

static state_t *state_of(PyObject *module) { return (state_t *)PyModule_GetState(module); }

/*
 * A read-only buffer that owns a scanner buffer's memory, so results reach Arrow
 * and numpy without a copy (pa.py_buffer and np.frombuffer take it as is).
 */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t len;
} BufferObject;

static void buffer_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    free(((BufferObject *)self)->p);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static int buffer_get(PyObject *self, Py_buffer *view, int flags) {
    static char empty[1];
    BufferObject *b = (BufferObject *)self;
    return PyBuffer_FillInfo(view, self, b->p ? b->p : empty, b->len, 1, flags);
}

static Py_ssize_t buffer_len(PyObject *self) { return ((BufferObject *)self)->len; }

static PyType_Slot buffer_slots[] = {
    {Py_tp_dealloc, (void *)buffer_dealloc},
    {Py_bf_getbuffer, (void *)buffer_get},
    {Py_sq_length, (void *)buffer_len},
    {Py_tp_doc, (void *)"Read-only memory of a scan result (supports the buffer protocol)."},
    {0, NULL},
};

static PyType_Spec buffer_spec = {
    "robotmia_frames._scan.Buffer", sizeof(BufferObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    buffer_slots,
};

/* Hand a buffer's memory to a new Buffer object (the buf_t is left empty). */
static PyObject *bytes_of(PyObject *type, buf_t *b) {
    PyTypeObject *tp = (PyTypeObject *)type;
    allocfunc alloc = (allocfunc)PyType_GetSlot(tp, Py_tp_alloc);
    BufferObject *o = (BufferObject *)alloc(tp, 0);
    if (!o) return NULL;
    if (b->p && b->cap - b->len > 4096) {
        /* Give back the unused growth room: the buffer lives as long as the
           result does. */
        char *p = (char *)realloc(b->p, b->len ? b->len : 1);
        if (p) b->p = p;
    }
    o->p = b->p;
    o->len = (Py_ssize_t)b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return (PyObject *)o;
}

/*
 * After a chunk: decide each column's kind the way engine.py's Python path would
 * and lay its values out as Arrow buffers over all n rows (validity bitmap,
 * values or offsets), so Python only wraps them. Columns left to Python (lists
 * or objects mixed with other values, odd floats in mixed columns, lists of
 * mixed elements) get K_PY and keep their per-value buffers.
 */
enum { K_PY = -1, K_NULL = 0, K_INT = 1, K_FLOAT = 2, K_BOOL = 3, K_STR = 4, K_TEXT = 5, K_LIST = 6 };
#define B(t) (1 << (t))
#define B_NUM (B(T_INT) | B(T_FLOAT))
#define B_BOOL (B(T_FALSE) | B(T_TRUE))
#define B_NESTED (B(T_RAW) | B(T_LIST))

typedef struct {
    int kind, ckind, cexact;
    buf_t valid, vals, cvalid, cvals, text;
} placed_t;

static int present_of(const buf_t *tags) {
    int p = 0;
    for (size_t i = 0; i < tags->len; i++) p |= 1 << (unsigned char)tags->p[i];
    return p & ~B(T_NULL);
}

static int scalar_kind(int p) {
    if (p == 0) return K_NULL;
    if ((p & ~B_NUM) == 0) return p == B(T_INT) ? K_INT : K_FLOAT;
    if ((p & ~B_BOOL) == 0) return K_BOOL;
    return K_PY;
}

/* A validity bitmap of n bits (left empty when every bit is set). */
static int put_bitmap(buf_t *out, const unsigned char *tags, const int32_t *rows, size_t m, size_t n) {
    size_t set = 0, nbytes = (n + 7) / 8;
    for (size_t i = 0; i < m; i++) set += tags[i] != T_NULL;
    if (set == n) return OK;
    if (buf_grow(out, nbytes ? nbytes : 1) != OK) return NOMEM;
    memset(out->p, 0, nbytes);
    out->len = nbytes;
    for (size_t i = 0; i < m; i++) {
        if (tags[i] == T_NULL) continue;
        size_t r = rows ? (size_t)rows[i] : i;
        out->p[r >> 3] |= (char)(1 << (r & 7));
    }
    return OK;
}

/* Values of a numeric or boolean kind at their rows (rows NULL: one per value). */
static int put_values(buf_t *out, int kind, const unsigned char *tags, const int32_t *rows,
                      size_t m, size_t n, const buf_t *ints, const buf_t *flts) {
    size_t width = kind == K_INT ? 8 : kind == K_FLOAT ? 8 : 0;
    size_t nbytes = kind == K_BOOL ? (n + 7) / 8 : n * width;
    if (buf_grow(out, nbytes ? nbytes : 1) != OK) return NOMEM;
    memset(out->p, 0, nbytes);
    out->len = nbytes;
    const int64_t *iv = (const int64_t *)ints->p;
    const double *dv = (const double *)flts->p;
    size_t ii = 0, fi = 0;
    for (size_t i = 0; i < m; i++) {
        size_t r = rows ? (size_t)rows[i] : i;
        switch (tags[i]) {
            case T_INT:
                if (kind == K_INT) ((int64_t *)out->p)[r] = iv[ii];
                else ((double *)out->p)[r] = (double)iv[ii];
                ii++;
                break;
            case T_FLOAT: ((double *)out->p)[r] = dv[fi++]; break;
            case T_TRUE: out->p[r >> 3] |= (char)(1 << (r & 7)); break;
            default: break;
        }
    }
    return OK;
}

/* n+1 offsets over rows from per-value ends (values with a non-matching tag
   contribute nothing; rows NULL: one row per value). */
static int put_offsets(buf_t *out, const int32_t *rows, const unsigned char *tags, int only_tag,
                       const int32_t *ends, size_t m, size_t n) {
    if (buf_grow(out, (n + 1) * 4) != OK) return NOMEM;
    int32_t *off = (int32_t *)out->p;
    out->len = (n + 1) * 4;
    int32_t pos = 0;
    size_t e = 0, k = 0;
    for (size_t r = 0; r < n; r++) {
        off[r] = pos;
        if (e < m && (rows ? (size_t)rows[e] : e) == r) {
            if (only_tag == 0 || tags[e] == only_tag) pos = ends[only_tag ? k++ : e];
            e++;
        }
    }
    off[n] = pos;
    return OK;
}

/* The text column of a key holding lists or objects among other values: each
   row's scalar text (sdat) or list/object text (rdat), in row order (rows NULL:
   one row per value). */
static int put_merged_text(placed_t *out, col_t *c, const int32_t *rows, size_t n) {
    size_t m = c->tags.len;
    const unsigned char *tags = (const unsigned char *)c->tags.p;
    const int32_t *soff = (const int32_t *)c->soff.p, *roff = (const int32_t *)c->roff.p;
    if (buf_grow(&out->vals, (n + 1) * 4) != OK) return NOMEM;
    if (buf_grow(&out->text, c->sdat.len + c->rdat.len + 1) != OK) return NOMEM;
    int32_t *off = (int32_t *)out->vals.p;
    out->vals.len = (n + 1) * 4;
    int32_t sprev = 0, rprev = 0;
    size_t e = 0, ri = 0;
    for (size_t r = 0; r < n; r++) {
        off[r] = (int32_t)out->text.len;
        if (e < m && (rows ? (size_t)rows[e] : e) == r) {
            if (tags[e] == T_RAW || tags[e] == T_LIST) {
                int32_t rend = roff[ri++];
                if (buf_put_span(&out->text, &c->rdat, rprev, rend) != OK) return NOMEM;
                rprev = rend;
            } else if (buf_put_span(&out->text, &c->sdat, sprev, soff[e]) != OK) {
                return NOMEM;
            }
            sprev = soff[e];
            e++;
        }
    }
    if (out->text.len > INT32_MAX) return HARD;
    off[n] = (int32_t)out->text.len;
    return OK;
}

/* Lay a column out over the chunk's n rows, or (sparse) over its own values, one
   row per value, its rows handed back beside them. */
static int place(col_t *c, size_t n, int sparse, placed_t *out) {
    memset(out, 0, sizeof *out);
    size_t m = c->tags.len;
    const unsigned char *tags = (const unsigned char *)c->tags.p;
    const int32_t *rows = sparse ? NULL : (const int32_t *)c->rows.p;
    if (sparse) n = m;
    int p = present_of(&c->tags);
    int k = scalar_kind(p);
    if (k == K_PY) {
        if (p == B(T_LIST)) {
            int cp = present_of(&c->ctags);
            int ck = scalar_kind(cp);
            if (ck == K_PY && cp == B(T_STR)) ck = K_STR;
            if (ck == K_PY) { out->kind = K_PY; return OK; }
            size_t cm = c->ctags.len;
            const unsigned char *ctags = (const unsigned char *)c->ctags.p;
            out->ckind = ck;
            out->cexact = cp != B_NUM;
            if (put_bitmap(&out->cvalid, ctags, NULL, cm, cm) != OK) return NOMEM;
            if (ck == K_STR) {
                if (buf_i32(&out->cvals, 0) != OK || buf_put(&out->cvals, c->coff.p, c->coff.len) != OK)
                    return NOMEM;
            } else if (ck != K_NULL &&
                       put_values(&out->cvals, ck, ctags, NULL, cm, cm, &c->cints, &c->cflts) != OK) {
                return NOMEM;
            }
            k = K_LIST;
        } else if (!(p & B_NESTED) && (p == B(T_STR) || !c->odd)) {
            k = p == B(T_STR) ? K_STR : K_TEXT;
        } else if ((c->objects || (p & ~B_NESTED)) && !c->odd && !c->raw_odd) {
            /* Objects, or lists mixed with scalars: a text column, each value
               its canonical JSON text (strings as they are). */
            out->kind = K_TEXT;
            out->cexact = 1;
            if (put_bitmap(&out->valid, tags, rows, m, n) != OK) return NOMEM;
            return put_merged_text(out, c, rows, n);
        } else {
            out->kind = K_PY;
            return OK;
        }
    }
    out->kind = k;
    if (k != K_LIST) out->cexact = 1; /* lists set their own, above */
    if (k == K_NULL) return OK;
    if (put_bitmap(&out->valid, tags, rows, m, n) != OK) return NOMEM;
    if (k == K_FLOAT) {
        /* A float column that also holds ints keeps its JSON text (offsets in
           cvals), in case it becomes text: ints must keep their spelling. With
           an odd float spelling there is none, and the column is not exact. */
        if (p == B_NUM) {
            if (c->odd) out->cexact = 0;
            else if (put_offsets(&out->cvals, rows, tags, 0, (const int32_t *)c->soff.p, m, n) != OK)
                return NOMEM;
        }
    }
    if (k == K_STR || k == K_TEXT)
        return put_offsets(&out->vals, rows, tags, 0, (const int32_t *)c->soff.p, m, n);
    if (k == K_LIST)
        return put_offsets(&out->vals, rows, tags, T_LIST, (const int32_t *)c->lend.p, m, n);
    return put_values(&out->vals, k, tags, rows, m, n, &c->ints, &c->flts);
}

static PyObject *build_result(PyObject *bt, table_t *t, rows_t *o, int32_t nrows, int sparse,
                              placed_t *placed) {
    PyObject *cols = PyList_New((Py_ssize_t)t->norder);
    if (!cols) return NULL;
    buf_t none = {NULL, 0, 0};
    for (size_t i = 0; i < t->norder; i++) {
        col_t *c = &t->cols[t->order[i]];
        placed_t *pl = &placed[i];
        int py = pl->kind == K_PY;
        /* Decided before the call: bytes_of empties the buffers it hands over,
           and the order in which arguments are evaluated is unspecified. */
        int text = pl->kind == K_STR || pl->kind == K_TEXT || pl->cvals.len > 0;
        buf_t *text_buf = pl->text.p ? &pl->text : (py || text) ? &c->sdat : &none;
        PyObject *item = Py_BuildValue(
            "(s#iNNNiiNNNNNNNNNN)", c->name, (Py_ssize_t)c->name_len, pl->kind,
            bytes_of(bt, &pl->valid), bytes_of(bt, &pl->vals),
            bytes_of(bt, text_buf),
            pl->ckind, pl->cexact, bytes_of(bt, &pl->cvalid), bytes_of(bt, &pl->cvals),
            bytes_of(bt, pl->kind == K_LIST && pl->ckind == K_STR ? &c->cdat : &none),
            bytes_of(bt, py || sparse ? &c->rows : &none), bytes_of(bt, py ? &c->tags : &none),
            bytes_of(bt, py ? &c->ints : &none), bytes_of(bt, py ? &c->flts : &none),
            bytes_of(bt, py ? &c->soff : &none), bytes_of(bt, py ? &c->roff : &none),
            bytes_of(bt, py ? &c->rdat : &none));
        if (!item || PyList_SetItem(cols, (Py_ssize_t)i, item) < 0) {
            Py_DECREF(cols);
            return NULL;
        }
    }
    return Py_BuildValue("(iNNNNNN)", (int)nrows, bytes_of(bt, &o->ev_off), bytes_of(bt, &o->ev_dat),
                         bytes_of(bt, &o->ev_ok), bytes_of(bt, &o->time), bytes_of(bt, &o->time_ok), cols);
}

PyDoc_STRVAR(scan_doc,
"scan(chunk, wanted=None, sparse=False, /) -> tuple | None\n\n"
"Scan a chunk of JSONL (lines separated by newlines) into per-key columns.\n"
"``wanted`` (a list of str) limits the keys stored. ``sparse``: each column\n"
"holds only its own values, with their rows. Returns None when any line needs\n"
"the Python engine.");

static PyObject *scan(PyObject *self, PyObject *args) {
    state_t *st = state_of(self);
    Py_buffer view;
    PyObject *wanted = Py_None;
    int sparse = 0;
    if (!PyArg_ParseTuple(args, "y*|Op", &view, &wanted, &sparse)) return NULL;
    table_t t;
    rows_t o;
    memset(&t, 0, sizeof t);
    memset(&o, 0, sizeof o);
    PyObject *result = NULL;
    placed_t *placed = NULL;
    char *names = NULL; /* the wanted keys' names */
    int r = OK;
    int64_t nrows = 0;
    const unsigned char *p = (const unsigned char *)view.buf, *end = p + view.len;

    t.first = -1;
    t.key = st->key;
    if (table_rehash(&t, 256) != OK) { PyErr_NoMemory(); goto done; }
    if (wanted != Py_None) {
        if (!PyList_Check(wanted)) { PyErr_SetString(PyExc_TypeError, "wanted must be a list"); goto done; }
        t.only_wanted = 1;
        /* The names are copied: the list may change while the scan runs
           without the GIL (or on a free-threaded interpreter). */
        Py_ssize_t count = PyList_Size(wanted);
        size_t total = 1;
        for (int pass = 0; pass < 2 && r == OK; pass++) {
            size_t at = 0;
            if (pass == 1 && !(names = (char *)malloc(total))) { PyErr_NoMemory(); goto done; }
            for (Py_ssize_t i = 0; i < count && r == OK; i++) {
                Py_ssize_t n;
                PyObject *item = PyList_GetItem(wanted, i);
                const char *s = item ? PyUnicode_AsUTF8AndSize(item, &n) : NULL;
                col_t *col;
                if (!s) goto done;
                if (pass == 0) { total += (size_t)n; continue; }
                if (at + (size_t)n > total) { r = HARD; break; } /* the list grew */
                memcpy(names + at, s, (size_t)n);
                r = table_get(&t, names + at, (size_t)n, 0, &col);
                at += (size_t)n;
            }
        }
    }
    if (buf_i32(&o.ev_off, 0) != OK) { PyErr_NoMemory(); goto done; }

    Py_BEGIN_ALLOW_THREADS
    while (p < end && r == OK) {
        const unsigned char *nl = (const unsigned char *)memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = nl ? nl : end;
        if (!blank(p, (size_t)(stop - p))) {
            if (nrows >= INT32_MAX) { r = HARD; break; }
            cur_t c = {p, stop, &st->env};
            r = scan_line(&c, &t, &o, (int32_t)nrows);
            nrows++;
        }
        p = nl ? nl + 1 : end;
    }
    /* Every stored key's result is laid out over every row: bound the cells
       (sparse columns hold their values only, bounded by the chunk). */
    if (r == OK && !sparse && t.norder > 0 && (size_t)nrows > MAX_CELLS / t.norder) r = HARD;
    if (r == OK) {
        placed = (placed_t *)calloc(t.norder ? t.norder : 1, sizeof(placed_t));
        if (!placed) r = NOMEM;
        for (size_t i = 0; r == OK && i < t.norder; i++)
            r = place(&t.cols[t.order[i]], (size_t)nrows, sparse, &placed[i]);
    }
    Py_END_ALLOW_THREADS

    if (r == NOMEM) { PyErr_NoMemory(); goto done; }
    if (r == HARD) { result = Py_None; Py_INCREF(result); goto done; }
    result = build_result(st->buffer_type, &t, &o, (int32_t)nrows, sparse, placed);
done:
    if (placed) {
        for (size_t i = 0; i < t.norder; i++) {
            free(placed[i].valid.p); free(placed[i].vals.p);
            free(placed[i].cvalid.p); free(placed[i].cvals.p); free(placed[i].text.p);
        }
        free(placed);
    }
    PyBuffer_Release(&view);
    table_free(&t);
    free(names);
    free(o.ev_off.p); free(o.ev_dat.p); free(o.ev_ok.p); free(o.time.p); free(o.time_ok.p);
    return result;
}

PyDoc_STRVAR(cut_doc,
"cut(chunk, start, n, /) -> int\n\n"
"The offset just past the n-th newline at or after ``start``; if there are\n"
"only k < n newlines, -1 - k.");

static PyObject *cut(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t start, n;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &start, &n)) return NULL;
    const char *p = (const char *)view.buf + start, *end = (const char *)view.buf + view.len;
    Py_ssize_t found = -1, seen = 0;
    if (start >= 0 && start <= view.len && n > 0) {
        while (p < end) {
            const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p));
            if (!nl) break;
            p = nl + 1;
            if (++seen == n) { found = (Py_ssize_t)(p - (const char *)view.buf); break; }
        }
        if (found < 0) found = -1 - seen;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(found);
}

PyDoc_STRVAR(trim_doc,
"trim() -> None\n\n"
"Return the C heap's free memory to the system (glibc's malloc_trim; a no-op\n"
"elsewhere). Freed chunks and scan buffers otherwise stay resident.");

static PyObject *trim(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
#ifdef __GLIBC__
    Py_BEGIN_ALLOW_THREADS
    malloc_trim(0);
    Py_END_ALLOW_THREADS
#endif
    Py_RETURN_NONE;
}

PyDoc_STRVAR(longest_probe_doc,
"longest_probe(keys, /) -> int\n\n"
"The most slots one lookup visits when the scanner's key table holds ``keys``\n"
"(a list of str), or -1 when a lookup would pass the bound and the scanner\n"
"would decline the chunk. A diagnostic of the keyed hash, for the tests.");

static PyObject *longest_probe(PyObject *self, PyObject *keys) {
    state_t *st = state_of(self);
    if (!PyList_Check(keys)) { PyErr_SetString(PyExc_TypeError, "keys must be a list"); return NULL; }
    table_t t;
    memset(&t, 0, sizeof t);
    t.key = st->key;
    t.first = -1;
    long out = -1;
    int r = table_rehash(&t, 256);
    Py_ssize_t count = PyList_Size(keys);
    for (Py_ssize_t i = 0; r == OK && i < count; i++) {
        Py_ssize_t n;
        PyObject *item = PyList_GetItem(keys, i);
        const char *s = item ? PyUnicode_AsUTF8AndSize(item, &n) : NULL;
        col_t *col;
        if (!s) { table_free(&t); return NULL; }
        r = table_get(&t, s, (size_t)n, 0, &col);
    }
    if (r == OK) out = (long)t.longest_probe;
    table_free(&t);
    if (r == NOMEM) return PyErr_NoMemory();
    return PyLong_FromLong(out);
}

static PyMethodDef methods[] = {
    {"trim", trim, METH_NOARGS, trim_doc},
    {"scan", scan, METH_VARARGS, scan_doc},
    {"cut", cut, METH_VARARGS, cut_doc},
    {"longest_probe", longest_probe, METH_O, longest_probe_doc},
    {NULL, NULL, 0, NULL},
};

/* Module state: the Buffer type, the C locale for strtod_l, the hash key. */
static int module_exec(PyObject *m) {
    state_t *st = state_of(m);
    st->env.floats_ok = 1;
#ifdef RF_HAVE_STRTOD_L
    st->env.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!st->env.c_locale) st->env.floats_ok = 0;
#else
    struct lconv *lc = localeconv();
    st->env.floats_ok = lc && lc->decimal_point && strcmp(lc->decimal_point, ".") == 0;
#endif
    PyObject *os = PyImport_ImportModule("os");
    PyObject *seed = os ? PyObject_CallMethod(os, "urandom", "i", 16) : NULL;
    Py_XDECREF(os);
    if (!seed) return -1;
    char *bytes;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(seed, &bytes, &len) < 0 || len != 16) {
        Py_DECREF(seed);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "os.urandom gave too few bytes");
        return -1;
    }
    memcpy(st->key, bytes, 16);
    Py_DECREF(seed);
    st->buffer_type = PyType_FromModuleAndSpec(m, &buffer_spec, NULL);
    if (!st->buffer_type) return -1;
    Py_INCREF(st->buffer_type);
    if (PyModule_AddObject(m, "Buffer", st->buffer_type) < 0) {
        Py_DECREF(st->buffer_type);
        return -1;
    }
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    state_t *st = state_of(m);
    if (st) Py_VISIT(st->buffer_type);
    return 0;
}

static int module_clear(PyObject *m) {
    state_t *st = state_of(m);
    if (st) Py_CLEAR(st->buffer_type);
    return 0;
}

static void module_free(void *m) {
    state_t *st = state_of((PyObject *)m);
    if (!st) return;
    Py_CLEAR(st->buffer_type);
#ifdef RF_HAVE_STRTOD_L
    if (st->env.c_locale) freelocale(st->env.c_locale);
    st->env.c_locale = (locale_t)0;
#endif
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
#ifdef Py_mod_gil
    /* Scanning touches only its own memory and the read-only module state. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Export lines to per-key columns (see engine.py).",
    sizeof(state_t), methods, module_slots, module_traverse, module_clear, module_free,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModuleDef_Init(&module); }
