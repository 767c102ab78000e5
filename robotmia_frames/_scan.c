/*
 * robotmia_frames._scan: export lines to per-key columns, in C.
 *
 * One call scans a chunk of JSONL lines (a list of bytes) and returns, for every
 * property key, the rows it appears in, a type tag per value and the values
 * themselves in flat buffers (int64, float64, UTF-8 string data with end offsets,
 * and the raw JSON text of objects and arrays). engine.py turns those into Arrow
 * arrays with a handful of vectorised calls per key.
 *
 * The scanner is deliberately partial: it accepts only lines it fully validates
 * and understands, and returns None for the whole chunk as soon as it meets
 * anything else (a malformed line, a non-object line, escapes in a key, a
 * duplicate key, an integer beyond int64, a float beyond double range, a lone
 * surrogate, a non-string event, deep nesting). The Python engine then handles
 * that chunk, so every decision about bad lines and odd values stays in one
 * place. The GIL is released while scanning.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
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

enum { T_NULL = 1, T_FALSE = 2, T_TRUE = 3, T_INT = 4, T_FLOAT = 5, T_STR = 6, T_RAW = 7 };
enum { OK = 0, HARD = -1, NOMEM = -2 };
#define MAX_DEPTH 256

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
    if (b->len + n > b->cap && buf_grow(b, n) != OK) return NOMEM;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return OK;
}

static inline int buf_i32(buf_t *b, int32_t v) { return buf_put(b, &v, sizeof v); }

/* ------------------------------------------------------------------ columns */

typedef struct {
    const char *name;
    size_t name_len;
    uint64_t hash;
    int skip;        /* not wanted (projection): validated, not stored */
    int seen;        /* appeared in this chunk */
    int32_t last_row;
    buf_t rows, tags, ints, flts, soff, sdat, roff, rdat;
} col_t;

typedef struct {
    col_t *cols;
    size_t ncols, capcols;
    int32_t *slots; /* open addressing: column index + 1, 0 = empty */
    size_t nslots;
    size_t *order; /* columns in order of first appearance */
    size_t norder;
    int only_wanted;
} table_t;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int table_rehash(table_t *t, size_t nslots) {
    int32_t *slots = (int32_t *)calloc(nslots, sizeof(int32_t));
    if (!slots) return NOMEM;
    for (size_t i = 0; i < t->ncols; i++) {
        size_t j = (size_t)t->cols[i].hash & (nslots - 1);
        while (slots[j]) j = (j + 1) & (nslots - 1);
        slots[j] = (int32_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return OK;
}

/* Find or add a key; *out is its column. */
static int table_get(table_t *t, const char *name, size_t n, int add_skip, col_t **out) {
    uint64_t h = hash_bytes(name, n);
    size_t j = (size_t)h & (t->nslots - 1);
    while (t->slots[j]) {
        col_t *c = &t->cols[t->slots[j] - 1];
        if (c->hash == h && c->name_len == n && memcmp(c->name, name, n) == 0) {
            *out = c;
            return OK;
        }
        j = (j + 1) & (t->nslots - 1);
    }
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
    t->slots[j] = (int32_t)(t->ncols + 1);
    t->ncols++;
    if (t->ncols * 2 > t->nslots && table_rehash(t, t->nslots * 2) != OK) return NOMEM;
    *out = &t->cols[t->ncols - 1];
    return OK;
}

static void table_free(table_t *t) {
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        free(c->rows.p); free(c->tags.p); free(c->ints.p); free(c->flts.p);
        free(c->soff.p); free(c->sdat.p); free(c->roff.p); free(c->rdat.p);
    }
    free(t->cols);
    free(t->slots);
    free(t->order);
}

/* ------------------------------------------------------------------ lexing */

typedef struct {
    const unsigned char *p, *e;
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

#ifdef RF_HAVE_STRTOD_L
static locale_t c_locale;
#endif
static int floats_ok = 1;

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
    if (!floats_ok) return HARD;
    char tmp[128];
    size_t len = (size_t)(p - start);
    if (len >= sizeof tmp) return HARD;
    memcpy(tmp, start, len);
    tmp[len] = 0;
    char *endp;
    errno = 0;
#ifdef RF_HAVE_STRTOD_L
    double d = strtod_l(tmp, &endp, c_locale);
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
                if (c->p >= c->e || *c->p != '"') return HARD;
                if ((r = lex_string(c, &s, &n, &esc, NULL)) != OK) return r;
                ws(c);
                if (c->p >= c->e || *c->p != ':') return HARD;
                c->p++;
                ws(c);
                if ((r = skip_value(c, depth + 1)) != OK) return r;
                ws(c);
                if (c->p >= c->e) return HARD;
                if (*c->p == ',') { c->p++; ws(c); continue; }
                if (*c->p == '}') { c->p++; return OK; }
                return HARD;
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

/* One property value into its column. */
static int put_value(cur_t *c, col_t *col, int32_t row) {
    const unsigned char *s;
    size_t n;
    int esc, r;
    unsigned char tag;
    if (c->p >= c->e) return HARD;
    switch (*c->p) {
        case '"':
            if ((r = lex_string(c, &s, &n, &esc, &col->sdat)) != OK) return r;
            if (col->sdat.len > INT32_MAX) return HARD;
            if (buf_i32(&col->soff, (int32_t)col->sdat.len) != OK) return NOMEM;
            tag = T_STR;
            break;
        case 't': if ((r = lit(c, "true", 4)) != OK) return r; tag = T_TRUE; break;
        case 'f': if ((r = lit(c, "false", 5)) != OK) return r; tag = T_FALSE; break;
        case 'n': if ((r = lit(c, "null", 4)) != OK) return r; tag = T_NULL; break;
        case '{':
        case '[': {
            const unsigned char *start = c->p;
            if ((r = skip_value(c, 1)) != OK) return r;
            if (buf_put(&col->rdat, start, (size_t)(c->p - start)) != OK) return NOMEM;
            if (col->rdat.len > INT32_MAX) return HARD;
            if (buf_i32(&col->roff, (int32_t)col->rdat.len) != OK) return NOMEM;
            tag = T_RAW;
            break;
        }
        default: {
            int is_int;
            int64_t iv;
            double dv;
            if ((r = lex_number(c, &is_int, &iv, &dv)) != OK) return r;
            if (is_int) {
                if (buf_put(&col->ints, &iv, sizeof iv) != OK) return NOMEM;
                tag = T_INT;
            } else {
                if (buf_put(&col->flts, &dv, sizeof dv) != OK) return NOMEM;
                tag = T_FLOAT;
            }
        }
    }
    if (buf_i32(&col->rows, row) != OK || buf_put(&col->tags, &tag, 1) != OK) return NOMEM;
    return OK;
}

/* The properties object of one line. */
static int scan_properties(cur_t *c, table_t *t, int32_t row, double *time, uint8_t *time_ok) {
    int r, esc, seen_time = 0;
    const unsigned char *s;
    size_t n;
    c->p++; /* '{' */
    ws(c);
    if (c->p < c->e && *c->p == '}') { c->p++; return OK; }
    for (;;) {
        if (c->p >= c->e || *c->p != '"') return HARD;
        if ((r = lex_string(c, &s, &n, &esc, NULL)) != OK) return r;
        if (esc) return HARD; /* escaped keys are rare: the Python path */
        ws(c);
        if (c->p >= c->e || *c->p != ':') return HARD;
        c->p++;
        ws(c);
        if (c->p >= c->e) return HARD;
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
            col_t *col;
            if ((r = table_get(t, (const char *)s, n, t->only_wanted, &col)) != OK) return r;
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
        ws(c);
        if (c->p >= c->e) return HARD;
        if (*c->p == ',') { c->p++; ws(c); continue; }
        if (*c->p == '}') { c->p++; return OK; }
        return HARD;
    }
}

typedef struct {
    buf_t ev_off, ev_dat, ev_ok, time, time_ok;
} rows_t;

static int scan_line(cur_t *c, table_t *t, rows_t *o, int32_t row) {
    int r, esc, seen_event = 0, seen_props = 0;
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
            if (c->p >= c->e || *c->p != '"') return HARD;
            if ((r = lex_string(c, &s, &n, &esc, NULL)) != OK) return r;
            if (esc) return HARD;
            ws(c);
            if (c->p >= c->e || *c->p != ':') return HARD;
            c->p++;
            ws(c);
            if (c->p >= c->e) return HARD;
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
            ws(c);
            if (c->p >= c->e) return HARD;
            if (*c->p == ',') { c->p++; ws(c); continue; }
            if (*c->p == '}') { c->p++; break; }
            return HARD;
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

static PyObject *bytes_of(buf_t *b) {
    return PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->len);
}

static PyObject *build_result(table_t *t, rows_t *o, int32_t nrows) {
    PyObject *cols = PyList_New((Py_ssize_t)t->norder);
    if (!cols) return NULL;
    for (size_t i = 0; i < t->norder; i++) {
        col_t *c = &t->cols[t->order[i]];
        PyObject *item = Py_BuildValue(
            "(s#NNNNNNNN)", c->name, (Py_ssize_t)c->name_len, bytes_of(&c->rows),
            bytes_of(&c->tags), bytes_of(&c->ints), bytes_of(&c->flts), bytes_of(&c->soff),
            bytes_of(&c->sdat), bytes_of(&c->roff), bytes_of(&c->rdat));
        if (!item) { Py_DECREF(cols); return NULL; }
        PyList_SET_ITEM(cols, (Py_ssize_t)i, item);
    }
    return Py_BuildValue("(iNNNNNN)", (int)nrows, bytes_of(&o->ev_off), bytes_of(&o->ev_dat),
                         bytes_of(&o->ev_ok), bytes_of(&o->time), bytes_of(&o->time_ok), cols);
}

PyDoc_STRVAR(scan_doc,
"scan(lines, wanted=None) -> tuple | None\n\n"
"Scan a list of JSONL lines (bytes, without newlines) into per-key columns.\n"
"``wanted`` (a list of str) limits the keys stored. Returns None when any line\n"
"needs the Python engine.");

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *lines, *wanted = Py_None;
    if (!PyArg_ParseTuple(args, "O!|O", &PyList_Type, &lines, &wanted)) return NULL;
    Py_ssize_t nlines = PyList_GET_SIZE(lines);
    const unsigned char **ptrs = NULL;
    size_t *lens = NULL;
    table_t t;
    rows_t o;
    memset(&t, 0, sizeof t);
    memset(&o, 0, sizeof o);
    PyObject *result = NULL;
    int r = OK;
    int32_t nrows = 0;

    ptrs = (const unsigned char **)malloc(sizeof(*ptrs) * (size_t)(nlines ? nlines : 1));
    lens = (size_t *)malloc(sizeof(*lens) * (size_t)(nlines ? nlines : 1));
    if (!ptrs || !lens) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < nlines; i++) {
        PyObject *b = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(b)) { PyErr_SetString(PyExc_TypeError, "lines must be bytes"); goto done; }
        ptrs[i] = (const unsigned char *)PyBytes_AS_STRING(b);
        lens[i] = (size_t)PyBytes_GET_SIZE(b);
    }
    if (nlines >= INT32_MAX) { result = Py_None; Py_INCREF(result); goto done; }
    if (table_rehash(&t, 256) != OK) { PyErr_NoMemory(); goto done; }
    if (wanted != Py_None) {
        if (!PyList_Check(wanted)) { PyErr_SetString(PyExc_TypeError, "wanted must be a list"); goto done; }
        t.only_wanted = 1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(wanted); i++) {
            Py_ssize_t n;
            const char *s = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(wanted, i), &n);
            col_t *col;
            if (!s) goto done;
            if (table_get(&t, s, (size_t)n, 0, &col) != OK) { PyErr_NoMemory(); goto done; }
        }
    }
    if (buf_i32(&o.ev_off, 0) != OK) { PyErr_NoMemory(); goto done; }

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nlines && r == OK; i++) {
        if (blank(ptrs[i], lens[i])) continue;
        cur_t c = {ptrs[i], ptrs[i] + lens[i]};
        r = scan_line(&c, &t, &o, nrows);
        nrows++;
    }
    Py_END_ALLOW_THREADS

    if (r == NOMEM) { PyErr_NoMemory(); goto done; }
    if (r == HARD) { result = Py_None; Py_INCREF(result); goto done; }
    result = build_result(&t, &o, nrows);
done:
    free(ptrs);
    free(lens);
    table_free(&t);
    free(o.ev_off.p); free(o.ev_dat.p); free(o.ev_ok.p); free(o.time.p); free(o.time_ok.p);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Export lines to per-key columns (see engine.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
#ifdef RF_HAVE_STRTOD_L
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_locale) floats_ok = 0;
#else
    struct lconv *lc = localeconv();
    floats_ok = lc && lc->decimal_point && strcmp(lc->decimal_point, ".") == 0;
#endif
    return PyModule_Create(&module);
}
