module gunmetal/bench/w4/peer

go 1.26.0

require github.com/coder/websocket v1.8.15
