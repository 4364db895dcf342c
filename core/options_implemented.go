package core

// What the options parser accepts (Gun's whole option set, so that Gun's
// option maps parse) but this build does not implement is refused here, when
// a connection is opened, with an *OptionError naming it: nothing is
// accepted and ignored. ParseOptions stays a faithful parser of Gun's
// options; Open (and gm_open, as GM_EOPTION) refuses. An entry goes away
// when its feature lands.
//
//	protocols "socks" beside other protocols
//	    the SOCKS proxy has no ALPN name either: socks is the connection's one
//	    protocol (the origin's protocols go in socks_opts).
//	protocols "raw" beside other protocols
//	    raw has no ALPN name, so Gun only ever speaks it as the one protocol
//	    of a connection; in a list it would be silently never used.
//	supervise = false
//	    Gun starts the connection under its supervisor (true) or linked to the
//	    caller (false). A library connection is always kept by the library
//	    until the host closes or frees it, and there is no calling process to
//	    link it to: true describes what gunmetal does, false is refused. (The
//	    Erlang binding implements false itself, with a link, and does not pass
//	    it on.)
//	tcp_opts.send_timeout_close = false, except for protocols ["raw"] over tcp
//	    a send timeout cuts an HTTP message, a WebSocket frame or a TLS
//	    record, which cannot be resumed: it always closes the connection.
//	    On raw over TCP the Data call reports how much went out and the
//	    byte stream goes on (gen_tcp's {timeout, RestData}).
//	http2_opts.stream_window_data_threshold other than 0
//	    cowlib holds DATA back while a flow-control window is below it;
//	    gunmetal sends whatever the windows allow (as a threshold of 0, its
//	    default here).
//	ws_opts.invalid_request_headers = "ignore"
//	    invalid request headers are always refused (GM_EINVAL), "raise".
//
// http2_opts.max_stream_buffer_size is not in this list: it bounds what
// cowlib buffers of a request body while the window is closed, and
// gunmetal buffers none of it (gm_data blocks instead), so every value
// holds.
func (o *Options) checkImplemented() error {
	for _, p := range o.Protocols {
		if p == "socks" && len(o.Protocols) > 1 {
			return &OptionError{Key: "protocols", Value: p,
				Msg: "socks must be the only protocol: the origin's protocols go in socks_opts"}
		}
		if p == "raw" && len(o.Protocols) > 1 {
			return &OptionError{Key: "protocols", Value: p,
				Msg: "raw must be the only protocol: it has no ALPN name, so it is never chosen from a list (Gun's rule)"}
		}
	}
	if o.Socks != nil && !optContains(o.Protocols, "socks") {
		return &OptionError{Key: "socks_opts", Msg: "given, but socks is not in protocols: it would be ignored"}
	}
	if !o.Supervise {
		return &OptionError{Key: "supervise", Value: false,
			Msg: "not supported by gunmetal: the library keeps every connection until it is closed or freed, and there is no calling process to link it to"}
	}
	if !o.TCP.SendTimeoutClose && (len(o.Protocols) != 1 || o.Protocols[0] != "raw" || o.Transport == "tls") {
		return &OptionError{Proto: "tcp_opts", Key: "send_timeout_close", Value: false,
			Msg: "only with protocols [\"raw\"] over tcp: a send timeout cuts an HTTP message, WebSocket frame or TLS record, which cannot be resumed, so it always closes the connection"}
	}
	if v := o.HTTP2.StreamWindowDataThreshold; v != 0 {
		return &OptionError{Proto: "http2_opts", Key: "stream_window_data_threshold", Value: int64(v),
			Msg: "not supported by gunmetal: DATA is sent as soon as the flow-control windows allow, never held back (only 0)"}
	}
	return o.WS.checkImplemented("ws_opts")
}

func (w *WSOpts) checkImplemented(proto string) error {
	if w.IgnoreInvalidRequestHeaders {
		return &OptionError{Proto: proto, Key: "invalid_request_headers", Value: "ignore",
			Msg: "not supported by gunmetal: invalid request headers are always refused (raise)"}
	}
	return nil
}
