package server

import (
	"net"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/membership"
)

// Fast-forwarding the election clock on start (etcd's
// --initial-election-tick-advance): a member of a multi-member cluster
// whose peers are reachable advances its clock to two ticks short of an
// election timeout, so that a cluster started together elects a leader
// about one timeout sooner; a member still hears a live leader's
// heartbeat before its (randomized, at least one timeout) election
// deadline. As in etcd, at least two peers must answer within
// advanceWait, so a two-member cluster never advances. etcd counts the
// peer connections its transport made; Cairn counts the peers whose peer
// port accepts a TCP connection. A one-member cluster campaigns at once
// whatever the setting (CampaignOnStart), as etcd fast-forwards it too.
const (
	advanceWait  = 5 * time.Second // etcd's rafthttp.ConnReadTimeout
	advanceProbe = 50 * time.Millisecond
)

// advanceTicks runs once, from Start; it ends when it has advanced, when
// advanceWait has passed, or when the member stops.
func (s *Server) advanceTicks() {
	var addrs []string
	for _, m := range s.st.Peers {
		if m.ID == s.st.MemberID || len(m.PeerURLs) == 0 {
			continue
		}
		if u, err := url.Parse(m.PeerURLs[0]); err == nil {
			addrs = append(addrs, u.Host)
		}
	}
	electionTicks := int(s.cfg.ElectionTimeout / s.cfg.HeartbeatInterval)
	if len(addrs) == 0 {
		return
	}
	if s.cfg.DisableInitialElectionTickAdvance {
		s.logger.Info("skipping initial election tick advance", zap.Int("election-ticks", electionTicks))
		return
	}
	s.logger.Info("starting initial election tick advance", zap.Int("election-ticks", electionTicks))
	d := net.Dialer{Timeout: advanceProbe}
	if s.cfg.PeerLocalAddr != nil {
		d.LocalAddr = &net.TCPAddr{IP: s.cfg.PeerLocalAddr}
	}
	deadline := time.Now().Add(advanceWait)
	for time.Now().Before(deadline) {
		reachable := 0
		for _, addr := range addrs {
			if c, err := d.Dial("tcp", addr); err == nil {
				c.Close()
				reachable++
			}
		}
		if reachable > 1 {
			ticks := electionTicks - 2
			s.logger.Info("initialized peer connections; fast-forwarding election ticks",
				zap.String("local-member-id", membership.IDString(s.st.MemberID)), zap.Int("forward-ticks", ticks),
				zap.String("forward-duration", (time.Duration(ticks)*s.cfg.HeartbeatInterval).String()),
				zap.Int("election-ticks", electionTicks), zap.String("election-timeout", s.cfg.ElectionTimeout.String()),
				zap.Int("active-remote-members", reachable))
			s.rn.AdvanceTicks(ticks)
			return
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(advanceProbe):
		}
	}
}
